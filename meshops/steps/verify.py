"""Prove the result: control plane ACTIVE on the target revision, every injected pod on
it, data plane ACTIVE (or DISABLED with no injected pod, as right after provisioning),
and — for a migration — the cluster equal to its backup: every backed-up Istio object
back by digest, every PeerAuthentication's mode, every AuthorizationPolicy present,
and every namespace that ran injected pods at backup time running them again on the
new revision. Only then is the migration record cleared. Prints one JSON result that
the stack exports under `clusters.<name>.last_verify` (as of this run: `pulumi refresh`
never re-runs a command)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.backup_store import Backup, peer_authentication_modes, planned_reads, read_backup
from meshops.cluster.drift import supplement_if_drifted
from meshops.cluster.fleet_reader import describe_mesh
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.inventory import SIDECAR, crds, has_sidecar, live_objects, owners_of, revision_labelled, tags_of
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.objects import IGNORED_BY_TRAFFIC_DIRECTOR, digest, istio_kinds
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.cluster.record import Ledger, MigrationRecord
from meshops.context import StepInput, revision_of
from meshops.steps.common import RECORD_READ, backup_ref, finish, ledger_of, owner_of, this_run, write_copy
from meshops.steps.reinject import relabel
from meshops.steps.restore import carried_configmaps
from meshops.steps.release_channel import current_channel
from meshops.steps.wait_ready import delays

SUMMARY = ('Proves the control plane ACTIVE on the target revision, every injected pod on it, the data plane ACTIVE, and the cluster '
           'equal to the backup (objects by digest, PeerAuthentication modes, AuthorizationPolicies, injected namespaces); '
           'then clears the migration record.')
STOPS = 'any of these not true'
CLUSTER_DATA = False
NEEDS_DECISION = True
NEEDS_BACKUP = True
OPTIONS: tuple[str, ...] = ()
DATA_PLANE_WAIT = 300


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_mesh(inp.ctx.fleet_project), gcloud.describe_cluster(inp.ctx), PLAN_KUBE.get("pods", all_namespaces=True),
            PLAN_KUBE.get("mutatingwebhookconfigurations"), RECORD_READ, *planned_reads("<backup-location>"),
            PLAN_KUBE.get("customresourcedefinitions"), PLAN_KUBE.get("<backed-up-resource>", all_namespaces=True),
            PLAN_KUBE.delete("configmap", [record.NAME], record.NAMESPACE)]


def pod_revision(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    status = (meta.get("annotations") or {}).get("sidecar.istio.io/status")
    if status:
        try:
            return str(json.loads(status).get("revision", ""))
        except ValueError:
            pass
    return str((meta.get("labels") or {}).get("istio.io/rev", ""))


def proxy_image(pod: dict) -> str:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == SIDECAR:
            return str(container.get("image", ""))
    return ""


def expected_injected(backup: Backup, current: MigrationRecord, from_revision: str) -> set[str]:
    """Namespaces whose pods must run a sidecar again: those with injected pods at backup
    time, and those onboarded after it (uninject took their labels) that reinject labelled
    for injection on the new revision."""
    onboarded = {ns for ns, labels in current.uninjected.items() if ns not in backup.namespaces
                 and relabel(labels, backup.revision_tags, from_revision)[0].get("istio-injection") == "enabled"}
    return {ns for ns, count in backup.injected.items() if count} | onboarded


def differences(backup: Backup, live: dict[str, list[dict]], pods: list[dict], expected_revision: str,
                tags: dict[str, str], running: set[str], injected: set[str]) -> list[str]:
    """What in the cluster is not as the backup says it should be (counts, never names:
    this result is logged and exported)."""
    problems = []
    now = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): digest(o) for r, objs in live.items() for o in objs}
    kept = backup.keyed()
    missing = [k for k in kept if k not in now and k[0] in live]  # kinds not served: archive-only (restore said so)
    differ = [k for k, obj in kept.items() if k in now and now[k] != digest(obj)]
    if missing:
        problems.append(f"{len(missing)} backed-up Istio objects missing")
    if differ:
        problems.append(f"{len(differ)} Istio objects differ from the backup")
    modes_now = peer_authentication_modes(live.get("peerauthentications.security.istio.io", []))
    wrong_modes = [k for k, mode in backup.peer_authentication_modes().items() if modes_now.get(k) != mode]
    if wrong_modes:
        problems.append(f"{len(wrong_modes)} PeerAuthentication modes differ from the backup (e.g. still PERMISSIVE)")
    policies = [k for k in kept if k[0] == "authorizationpolicies.security.istio.io" and k not in now]
    if policies:
        problems.append(f"{len(policies)} AuthorizationPolicies missing")
    on_revision = Counter(p["metadata"].get("namespace", "") for p in pods
                          if tags.get(pod_revision(p), pod_revision(p)) == expected_revision)
    # A namespace that runs pods but none injected on the new revision lost its mesh; one
    # that runs no pod at all (deleted, or scaled to zero since) has nothing to prove.
    empty = [ns for ns in sorted(injected) if ns in running and not on_revision.get(ns)]
    if empty:
        problems.append(f"{len(empty)} namespaces that ran injected pods before have none on {expected_revision}")
    return problems


def workload_problems(runner, kube, backup: Backup, current: MigrationRecord, all_pods: list[dict], expected: str,
                      tags: dict[str, str], from_revision: str) -> list[str]:
    """Per workload, not per namespace: every workload that ran a sidecar at backup time (or
    whose pod template uninject relabelled) and runs pods now runs them all with a sidecar of
    the new revision; and no pod template is still labelled for the old revision."""
    replicasets = items(runner, kube.get("replicasets", all_namespaces=True))
    wanted = set(backup.injected_workloads) | set(current.relabelled_workloads)
    by_workload: dict[str, list[dict]] = {}
    for pod in all_pods:
        owners, _ = owners_of([pod], replicasets)
        for owner in owners:
            by_workload.setdefault(f"{owner.namespace}/{owner.ref}", []).append(pod)
    lost = [w for w in sorted(wanted) if by_workload.get(w)
            and not all(has_sidecar(p) and tags.get(pod_revision(p), pod_revision(p)) == expected for p in by_workload[w])]
    problems = [f"{len(lost)} workloads that ran a sidecar before run pods without one on {expected}"] if lost else []
    stale = revision_labelled(runner, kube, from_revision, tags) if from_revision != expected else {}
    if stale:
        problems.append(f"{len(stale)} pod templates still labelled for {from_revision}")
    return problems


def _compare_with_backup(inp: StepInput, tools: Tools, ledger: Ledger, all_pods: list[dict], expected: str,
                         tags: dict[str, str]) -> tuple[list[str], Any, Backup | None]:
    pods = [p for p in all_pods if has_sidecar(p)]
    running = {p["metadata"].get("namespace", "") for p in all_pods}
    runner, ref = tools.runner, backup_ref(inp)
    current = this_run(ledger, inp, ref, finished_ok=True, step="verify")
    if not current.restore_verified:
        return [f"restore has not put the backup back and verified it (record phase {current.phase})"], current, None
    backup = read_backup(current.backup, runner, owner_of(inp), current.run_id)
    if current.phase != "verified":
        # Restore checked every object by digest; what differs now was changed after it (a
        # teammate's edit while the run stood failed): kept in a supplementary backup, so
        # the backup this verify compares with is what the cluster is meant to hold.
        current, ref, backup = supplement_if_drifted(inp, tools, ledger, current, backup)
    live = live_objects(runner, ledger.kube, istio_kinds(crds(runner, ledger.kube)))
    problems = differences(backup.as_restored(inp.decision.from_revision, expected), live, pods, expected, tags, running,
                           expected_injected(backup, current, inp.decision.from_revision))
    problems += workload_problems(runner, ledger.kube, backup, current, all_pods, expected, tags, inp.decision.from_revision)
    carried = carried_configmaps(backup, inp.decision.from_revision, expected)
    if carried:
        now = {m["metadata"]["name"]: m for m in items(runner, ledger.kube.get("configmaps", namespace="istio-system"))}
        wrong = [c["metadata"]["name"] for c in carried if (now.get(c["metadata"]["name"]) or {}).get("data") != c.get("data")]
        if wrong:
            problems.append(f"{len(wrong)} istio-system mesh config maps ({', '.join(sorted(wrong))}) differ from the backup")
    return problems, current, backup


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    ctx = inp.ctx
    expected = revision_of(ctx.channel)
    migrating = inp.decision.migrate
    with cluster_access(ctx, tools.runner) as kube:
        all_pods = items(tools.runner, kube.get("pods", all_namespaces=True))
        pods = [p for p in all_pods if has_sidecar(p)]
        tags = tags_of(items(tools.runner, kube.get("mutatingwebhookconfigurations")))
        ledger = ledger_of(inp, tools.runner, kube)
        problems, current, backup = (_compare_with_backup(inp, tools, ledger, all_pods, expected, tags) if migrating
                                     else ([], None, None))
        # Backed-up kinds the TRAFFIC_DIRECTOR implementation ignores.
        ignored = sorted(r for r in IGNORED_BY_TRAFFIC_DIRECTOR if backup and backup.objects.get(r))
        images = Counter(proxy_image(p) for p in pods)
        stale = [p for p in pods if tags.get(pod_revision(p), pod_revision(p)) != expected]
        start = tools.now()
        for delay in delays():
            state = mesh_state(describe_mesh(tools, ctx.fleet_project), ctx.membership_location, inp.decision.membership)
            if state.data_plane_state == "ACTIVE" or not pods or tools.now() - start + delay > DATA_PLANE_WAIT:
                break
            tools.log(f"[{ctx.cluster}] verify: data plane {state.data_plane_state} with {len(pods)} injected pods; waiting")
            tools.sleep(delay)
        warnings = []
        if state.data_plane_state == "DISABLED" and not pods:
            warnings.append("data plane DISABLED: no injected pod yet (normal right after provisioning; it turns ACTIVE once injected workloads run)")
        switched = inp.decision.implementation not in ("UNKNOWN", state.implementation)
        if switched and ignored:
            problems.append(f"implementation switched from {inp.decision.implementation} to {state.implementation}, which ignores "
                            f"{', '.join(ignored)} the cluster holds")
        elif switched:
            warnings.append(f"implementation changed from {inp.decision.implementation} to {state.implementation}")
        cluster_channel = current_channel(run_json(tools.runner, gcloud.describe_cluster(ctx)))
        if cluster_channel != ctx.channel:
            problems.append(f"the cluster's GKE channel is {cluster_channel}, not {ctx.channel} (changed by hand during the run?)")
        if state.control_plane_state != "ACTIVE" or state.ready_revision() != expected:
            problems.append(f"control plane {state.control_plane_state} on {state.ready_revision()}, expected ACTIVE on {expected}")
        if stale:
            problems.append(f"{len(stale)} pods not on {expected}")
        if pods and state.data_plane_state != "ACTIVE":
            problems.append(f"data plane {state.data_plane_state} with {len(pods)} injected pods")
        for warning in warnings:
            tools.log(f"[{ctx.cluster}] verify: warning: {warning}")
        if problems:
            raise StepFailed(f"cluster {ctx.cluster}: not verified: {'; '.join(problems)}; the migration record stays in flight")
        if current is not None and current.phase != "verified":  # a verified copy: cleared by an earlier try
            done = ledger.advance(current, "verified")
            write_copy(ledger, done)
            finish(ledger, done, "verified")
            ledger.clear()
    tools.log(f"[{ctx.cluster}] verify: ACTIVE on {expected}; {len(pods)} injected pods on {dict(images) or 'no proxy'}"
              + ("; equal to the backup, migration record cleared" if current is not None else ""))
    return {
        "cluster": ctx.cluster,
        "control_plane_state": state.control_plane_state,
        "data_plane_state": state.data_plane_state,
        "revision": state.ready_revision() or "",
        "implementation": state.implementation,
        "implementation_before": inp.decision.implementation,
        "proxy_images": dict(sorted(images.items())),
        "injected_pods": len(pods),
        "compared_with_backup": current is not None,
        "run_id": inp.decision.run_id,
        "verified": True,
        "warnings": warnings,
    }
