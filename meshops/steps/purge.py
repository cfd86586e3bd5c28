"""Remove the in-cluster control plane: revisions, webhooks, istio-system/asm-system,
mdp-controller, the CNI, dataplanecontrols and the mesh CRDs.

Refuses to start without this run's verified backup, while management is not MANUAL
(checked live), or while istio-system/asm-system hold workloads that no backup holds.
Before the first deletion it compares the live Istio objects with the backup: objects
added or changed since (a teammate's edit between a failed run and its retry) go into a
supplementary backup of the same run, which the record and this step's result then name.
Already-absent objects are fine. The fleet re-creates CRDs for a while after management
is switched off (practitioners' reports, no public source found), so the purge pauses and
re-checks, deleting again, until a check finds nothing.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import planned_reads, planned_writes, read_backup
from meshops.cluster.drift import archive_additions, compare_applies, supplement_if_drifted, write_supplement
from meshops.cluster.inventory import MESH_NAMESPACES, crds, mesh_namespace_contents, workloads_refusal
from meshops.cluster.kube import PLAN_KUBE, Kube, cluster_access, in_batches, items
from meshops.cluster.objects import MESH_GROUP, archive_only, kind_of_crd, mesh_crds
from meshops.cluster.process import Runner, StepFailed, Tools
from meshops.context import StepInput
from meshops.steps.common import (
    RECORD_READ, RECORD_WRITE, backup_ref, ledger_of, owner_of, require_manual, skipped, this_run, write_copy
)

SUMMARY = 'Deletes Istio webhooks, ControlPlaneRevisions, dataplanecontrols, istio-system, asm-system, mdp-controller, the CNI and the mesh CRDs; pauses and re-checks until nothing comes back.'
STOPS = ('no verified backup; management not MANUAL now; workloads of yours in istio-system or asm-system; '
         'objects still coming back after 5 rounds')
NEEDS_DECISION = True
NEEDS_BACKUP = True
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("purge_crds",)
RECHECK_SECONDS = 30
MAX_ROUNDS = 5
CPR = f"controlplanerevisions.{MESH_GROUP}"
DPC = f"dataplanecontrols.{MESH_GROUP}"
KUBE_SYSTEM = {("Deployment", "mdp-controller"): "deployment", ("DaemonSet", "istio-cni-node"): "daemonset",
               ("ConfigMap", "istio-cni-plugin-config"): "configmap"}
WEBHOOK_PREFIXES = ("istio", "istiod")
RBAC_PREFIXES = ("istiod-", "istio-reader-")
_WEBHOOK_LABELS = ("istio.io/rev", "istio.io/tag", "operator.istio.io/component")


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    found = [gcloud.describe_cluster(inp.ctx), RECORD_READ, *planned_reads("<backup-location>"),
             gcloud.describe_mesh(inp.ctx.fleet_project), k.get("<istio-resource>", all_namespaces=True),
             *planned_writes("<backup-location>/supplement-<n>"), RECORD_WRITE,
             k.api_resources(), *(k.get("<namespaced-kinds>", namespace=n) for n in MESH_NAMESPACES),
             k.get("customresourcedefinitions"), k.get("mutatingwebhookconfigurations"), k.get("validatingwebhookconfigurations"),
             k.delete("mutatingwebhookconfigurations", ["<istio-webhook>"]), k.delete("validatingwebhookconfigurations", ["<istio-webhook>"]),
             k.get(CPR, namespace="istio-system"), k.delete(CPR, ["<revision>"], "istio-system"),
             k.get(DPC, all_namespaces=True), k.delete_all(DPC),
             k.get("namespaces"), k.delete("namespaces", list(MESH_NAMESPACES)),
             k.get("deployments,daemonsets,configmaps", namespace="kube-system"),
             k.delete("deployment", ["mdp-controller"], "kube-system"),
             k.delete("daemonset", ["istio-cni-node"], "kube-system", foreground=True),
             k.delete("configmap", ["istio-cni-plugin-config"], "kube-system"),
             k.get("clusterroles,clusterrolebindings"), k.delete("clusterroles", ["<istio-clusterrole>"])]
    if inp.options.purge_crds:
        found += [k.get("<operator-kind>", all_namespaces=True),
                  k.merge_patch("<operator-kind>", "<name>", "<namespace>", {"metadata": {"finalizers": None}}),
                  k.delete("customresourcedefinitions", ["<mesh-crd>"])]
    return [*found, RECORD_WRITE]


def is_istio_webhook(webhook: dict) -> bool:
    meta = webhook.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name", ""))
    return name.startswith(WEBHOOK_PREFIXES) or any(k in labels for k in _WEBHOOK_LABELS) or labels.get("app") in ("sidecar-injector", "istiod")


def _names(objs: list[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def release_finalizers(runner: Runner, kube: Kube, doomed: list[dict]) -> list[str]:
    """Objects of operator kinds (install.istio.io: IstioOperator) carry finalizers that
    only their operator removes, and no operator runs on a managed mesh: deleting their CRD
    would hang until kubectl's timeout (Kubernetes docs, Finalizers; Istio's uninstall
    notes). Their content is in the backup's archive; clear the finalizers first."""
    released = []
    for kind in (kind_of_crd(c) for c in doomed):
        if not archive_only(kind.resource):
            continue
        for obj in items(runner, kube.get(kind.resource, all_namespaces=kind.namespaced)):
            meta = obj.get("metadata") or {}
            if meta.get("finalizers"):
                runner(kube.merge_patch(kind.resource, meta["name"], meta.get("namespace", ""), {"metadata": {"finalizers": None}}))
                released.append(f"finalizers/{kind.resource}/{meta.get('namespace', '')}/{meta['name']}")
    return released


def purge_once(runner: Runner, kube: Kube, purge_crds: bool) -> list[str]:
    """Delete every mesh object present; return what was found (empty: nothing left)."""
    found: list[str] = []
    crd_list = crds(runner, kube)
    crd_names = {c["metadata"]["name"] for c in crd_list}
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        hooks = _names([w for w in items(runner, kube.get(kind)) if is_istio_webhook(w)])
        if hooks:
            runner(kube.delete(kind, hooks))
            found += [f"{kind}/{n}" for n in hooks]
    if CPR in crd_names:
        revisions = _names(items(runner, kube.get(CPR, namespace="istio-system")))
        if revisions:
            runner(kube.delete(CPR, revisions, "istio-system"))
            found += [f"{CPR}/{n}" for n in revisions]
    if DPC in crd_names:
        namespaced = next(kind_of_crd(c).namespaced for c in crd_list if c["metadata"]["name"] == DPC)
        controls = items(runner, kube.get(DPC, all_namespaces=namespaced))
        if controls:
            runner(kube.delete_all(DPC))
            found += [f"{DPC}/{n}" for n in _names(controls)]
    present = [n for n in _names(items(runner, kube.get("namespaces"))) if n in MESH_NAMESPACES]
    if present:
        runner(kube.delete("namespaces", present))
        found += [f"namespace/{n}" for n in present]
    for obj in items(runner, kube.get("deployments,daemonsets,configmaps", namespace="kube-system")):
        resource = KUBE_SYSTEM.get((obj.get("kind"), obj["metadata"]["name"]))
        if resource:
            # The CNI's pods must be gone before the new control plane installs its own.
            runner(kube.delete(resource, [obj["metadata"]["name"]], "kube-system", foreground=resource == "daemonset"))
            found.append(f"kube-system/{resource}/{obj['metadata']['name']}")
    rbac: dict[str, list[str]] = {}
    for obj in items(runner, kube.get("clusterroles,clusterrolebindings")):
        if str(obj["metadata"]["name"]).startswith(RBAC_PREFIXES):
            rbac.setdefault("clusterroles" if obj.get("kind") == "ClusterRole" else "clusterrolebindings", []).append(obj["metadata"]["name"])
    for kind, names in sorted(rbac.items()):
        for batch in in_batches(sorted(names)):
            runner(kube.delete(kind, batch))
        found += [f"{kind}/{n}" for n in sorted(names)]
    if purge_crds:
        doomed = mesh_crds(crd_list)
        found += release_finalizers(runner, kube, [c for c in crd_list if c["metadata"]["name"] in doomed])
        if doomed:
            runner(kube.delete("customresourcedefinitions", doomed))
            found += [f"crd/{n}" for n in doomed]
    return found


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    ref = backup_ref(inp)
    removed: list[str] = []
    with cluster_access(inp.ctx, tools.runner) as kube:
        ledger = ledger_of(inp, tools.runner, kube)
        current = this_run(ledger, inp, ref, step="purge")
        ref = current.backup  # a supplementary backup taken by an earlier try of this step supersedes state's
        try:
            backup = read_backup(ref, tools.runner, owner_of(inp), current.run_id)
        except StepFailed as error:
            raise StepFailed(f"refusing to purge cluster {inp.ctx.cluster}: {error}") from None
        require_manual(tools.runner, inp, current)
        contents = mesh_namespace_contents(tools.runner, kube)
        if contents.workloads:  # added since preflight
            raise StepFailed(f"refusing to purge: {workloads_refusal(inp.ctx.cluster, contents.workloads)}")
        if compare_applies(current):
            current, ref, backup = supplement_if_drifted(inp, tools, ledger, current, backup)
        extended = archive_additions(backup, contents.archive)
        if extended is not None:  # objects added to istio-system/asm-system since the backup: archived before they go
            current, ref, backup = write_supplement(inp, tools, ledger, current, extended)
            tools.log(f"[{inp.ctx.cluster}] purge: objects added to {' and '.join(MESH_NAMESPACES)} since the backup are archived "
                      f"in a supplementary backup at {ref.location}")
        # Before the first deletion; a second purge (a resumed run after restore) makes the
        # restored objects ours to delete again, so restore must verify them anew.
        current = ledger.advance(current, "purging", restore_verified=False)
        write_copy(ledger, current)  # from here deletions are ours: the copy beside the backup says so too
        for round_number in range(1, MAX_ROUNDS + 1):
            found = purge_once(tools.runner, kube, inp.options.purge_crds)
            if not found:
                break
            removed += found
            tools.log(f"[{inp.ctx.cluster}] purge: round {round_number} removed {len(found)} objects; re-checking in {RECHECK_SECONDS}s")
            tools.sleep(RECHECK_SECONDS)
        else:
            raise StepFailed(f"cluster {inp.ctx.cluster}: mesh objects keep coming back after {MAX_ROUNDS} purges "
                             f"(last round removed {len(found)}); is mesh management still automatic for {inp.decision.membership}?")
        ledger.advance(current, "purged")
    tools.log(f"[{inp.ctx.cluster}] purge: clean ({len(removed)} deletions; backup at {ref.location})")
    return {"cluster": inp.ctx.cluster, "backup": ref.to_dict(), "removed": len(set(removed)),
            "supplemented": bool(current.earlier_backups)}
