"""Re-apply every backed-up Istio resource with server-side apply and verify each one
against the manifest's digests. It runs as soon as the new control plane is ready and
before reinject restarts any workload onto a sidecar, so STRICT PeerAuthentications and
every AuthorizationPolicy (deleted with their CRDs by the purge, or removed on request)
are in force before the first new sidecar starts; security kinds are applied first. It
also carries the old revision's mesh config map over to the new revision's name.

Only what a mesh backup may hold is applied (meshops.cluster.restorable), checked here, at
restore time, whoever wrote the backup. Kinds the cluster no longer serves never keep
security away: every served kind is applied first, then the step fails naming the rest."""

from __future__ import annotations

import json
from typing import Any

from meshops.cluster import gcloud, names
from meshops.cluster.backup_store import Backup, planned_reads, read_backup
from meshops.cluster.drift import supplement_if_drifted
from meshops.cluster.inventory import crds, live_objects
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.objects import archive_only, digest, istio_kinds
from meshops.cluster.process import StepFailed, Tools
from meshops.cluster.restorable import check_configmaps, check_istio_objects
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, backup_ref, ledger_of, owner_of, skipped, this_run, write_copy

SUMMARY = "Server-side applies every backed-up object (STRICT mTLS and removed policies included) and checks each one's digest against the manifest."
STOPS = "kinds no longer served; an object missing or different from the backup; a migration record that is not this run's"
NEEDS_DECISION = True
NEEDS_BACKUP = True
SECURITY = ("peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io",
            "requestauthentications.security.istio.io")
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS: tuple[str, ...] = ()


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, *planned_reads("<backup-location>"),
            k.get("customresourcedefinitions"), k.get("namespaces"), k.apply(),
            k.get("<backed-up-resource>", all_namespaces=True), RECORD_WRITE]


def carried_configmaps(backup: Backup, from_revision: str, to_revision: str) -> list[dict]:
    """The old revision's `istio-<revision>` mesh config, renamed for the new revision."""
    carried = []
    for cm in backup.configmaps:
        copy = json.loads(json.dumps(cm))
        if copy["metadata"]["name"] == f"istio-{from_revision}":
            copy["metadata"]["name"] = f"istio-{to_revision}"
        carried.append(copy)
    return carried


def security_first(resource: str) -> tuple[int, str]:
    return (0 if resource in SECURITY else 1, resource)


def apply_backup(runner, kube, backup: Backup, location: str, cluster: str, from_revision: str, to_revision: str,
                 dry_run: bool = False) -> dict[str, Any]:
    """Server-side apply `backup` (security kinds first) and check every object's digest;
    with `dry_run`, only say what would be applied. Shared with `meshops restore`."""
    backup = backup.as_restored(from_revision, to_revision)  # revision labels moved to the new revision
    kinds = {k.resource: k for k in istio_kinds(crds(runner, kube))}
    check_istio_objects(backup.objects, kinds, location)
    check_configmaps(backup.configmaps, location)
    archived = sorted(r for r, objs in backup.objects.items() if objs and r not in kinds and archive_only(r))
    lost = sorted(r for r, objs in backup.objects.items() if objs and r not in kinds and not archive_only(r))
    # Each object at the version the new CRD stores (served by definition): a backup taken at
    # networking.istio.io/v1 applies on CRDs that serve only v1beta1, and the reverse.
    to_apply = [{**o, "apiVersion": f"{kinds[r].group}/{kinds[r].version}"}
                for r in sorted(backup.objects, key=security_first) if r in kinds for o in backup.objects[r]]
    to_apply += carried_configmaps(backup, from_revision, to_revision)
    needed = {names.namespace(o["metadata"].get("namespace")) for o in to_apply if o["metadata"].get("namespace")}
    live_namespaces = {n["metadata"]["name"] for n in items(runner, kube.get("namespaces"))}
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(needed - live_namespaces)]
    restored_kinds = [kinds[r] for r, objs in sorted(backup.objects.items()) if objs and r in kinds]
    summary = {"restored": sum(len(backup.objects[k.resource]) for k in restored_kinds), "archived_kinds": archived,
               "archived_objects": len(backup.archive), "created_namespaces": [n["metadata"]["name"] for n in namespaces],
               "by_kind": {k.resource: len(backup.objects[k.resource]) for k in restored_kinds}}
    if dry_run:
        return summary
    if to_apply:
        runner(kube.apply(), input=json.dumps({"apiVersion": "v1", "kind": "List", "items": namespaces + to_apply}))
    wrong = _differing(runner, kube, backup, kinds, restored_kinds)
    existing = [key for key in wrong if key[3]]
    if existing:
        # Server-side apply keeps fields another field manager owns (a teammate's apply since):
        # replace those objects whole with the backed-up ones, then check again.
        by_key = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for r in kinds
                  for o in to_apply if o["kind"] == kinds[r].kind and o["apiVersion"].startswith(kinds[r].group + "/")}
        runner(kube.replace(), input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                 "items": [by_key[key[:3]] for key in existing if key[:3] in by_key]}))
        wrong = _differing(runner, kube, backup, kinds, restored_kinds)
    if wrong:
        raise StepFailed(f"cluster {cluster}: {len(wrong)} restored objects are missing or differ from the backup; "
                         f"the backup is at {location}")
    if lost:  # after every served kind is back (security first): what is left is named, never silently dropped
        raise StepFailed(f"cluster {cluster}: kinds {', '.join(lost)} are not served here, so their "
                         f"{sum(len(backup.objects[r]) for r in lost)} objects were not restored (every other object was, "
                         f"and verified); they stay in the backup at {location}: install their CRDs and re-run `pulumi up`")
    return summary


def _differing(runner, kube, backup: Backup, kinds: dict, restored_kinds: list) -> list[tuple[str, str, str, bool]]:
    """(resource, namespace, name, exists) of backed-up objects not live as backed up."""
    live = live_objects(runner, kube, restored_kinds)
    live_digests = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): digest(o) for r, objs in live.items() for o in objs}
    return [(*key, key in live_digests) for key, obj in backup.keyed().items()
            if key[0] in kinds and live_digests.get(key) != digest(obj)]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    runner, decision, ref = tools.runner, inp.decision, backup_ref(inp)
    with cluster_access(inp.ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        current = this_run(ledger, inp, ref, step="restore")
        current = ledger.advance(current, "restored")  # before any change: the record never under-states
        # With purgeCrds false the Istio objects stayed served through the purge: a teammate's
        # edit since is taken into a supplement before the apply would overwrite it.
        current, ref, backup = supplement_if_drifted(inp, tools, ledger, current,
                                                     read_backup(current.backup, runner, owner_of(inp), current.run_id))
        summary = apply_backup(runner, kube, backup, ref.location, inp.ctx.cluster, decision.from_revision, decision.to_revision)
        write_copy(ledger, ledger.advance(current, current.phase, restore_verified=True))
    tools.log(f"[{inp.ctx.cluster}] restore: {summary['restored']} objects re-applied and verified by digest; "
              f"namespaces created: {len(summary['created_namespaces'])}")
    if backup.archive:
        tools.log(f"[{inp.ctx.cluster}] restore: {len(backup.archive)} config maps/secrets of istio-system and asm-system stay "
                  f"in the backup (not re-applied: the new control plane owns those namespaces)")
    return {"cluster": inp.ctx.cluster, "verified": True, **{k: v for k, v in summary.items() if k != "by_kind"}}
