"""Put injection back: `istio.io/rev=asm-managed*` becomes the channel-agnostic
`istio-injection=enabled`, other labels come back as they were; then restart the
workloads of those namespaces so they get the new revision's proxy, and wait for each
rollout (`kubectl rollout status`). The namespaces are the backup's and those uninject
recorded removing labels from (one labelled after the backup included). Runs after
restore: the security policies are in force before the first new sidecar starts."""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import planned_reads, read_backup
from meshops.cluster.inventory import restart, revision_labelled, template_label_patch, workloads_in
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.process import Tools
from meshops.context import StepInput, channel_of_revision
from meshops.cluster.record import MigrationRecord
from meshops.steps.common import RECORD_READ, RECORD_WRITE, backup_ref, ledger_of, owner_of, skipped, this_run

SUMMARY = ('Relabels namespaces (istio.io/rev=asm-managed* becomes istio-injection=enabled), restarts their workloads onto the new proxy '
           'and waits for each rollout.')
STOPS = "a rollout not finished within 5 minutes; a migration record that is not this run's"
NEEDS_DECISION = True
NEEDS_BACKUP = True
ROLLOUT_TIMEOUT_SECONDS = 300
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("restart_workloads",)


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    found = [gcloud.describe_cluster(inp.ctx), RECORD_READ, *planned_reads("<backup-location>"),
             k.get("namespaces"), k.label_namespace("<namespace>", {"istio-injection": "enabled"}, ["istio.io/rev"])]
    if inp.options.restart_workloads:
        found += [k.get("deployments,statefulsets,daemonsets", all_namespaces=True), k.restart("<namespace>", ["<kind>/<name>"]),
                  k.rollout_status("<namespace>", "<kind>/<name>", ROLLOUT_TIMEOUT_SECONDS)]
    return [*found, RECORD_WRITE]


def relabel(labels: dict[str, str], tags: dict[str, str] | None = None, from_revision: str = "") -> tuple[dict[str, str], list[str]]:
    """(labels to set, labels to remove) for a namespace's backed-up injection labels. A
    revision tag (`tags`: tag -> revision at backup time) that pointed at the revision the
    cluster ran (`from_revision`) counts as that revision: the purge deleted its webhook, so
    the label alone would leave the namespace's new pods without a sidecar. A tag pointing
    anywhere else (a revision not installed) injected nothing and stays as it was."""
    revision = labels.get("istio.io/rev")
    if revision is None:
        return dict(labels), []
    tagged = (tags or {}).get(revision)
    if (tagged is None and channel_of_revision(revision)) or (tagged is not None and tagged == from_revision):
        return {"istio-injection": "enabled"}, ["istio.io/rev"]
    return dict(labels), []


def injected_namespaces(backup_namespaces: dict[str, dict[str, str]], current: MigrationRecord) -> dict[str, dict[str, str]]:
    """Namespace -> injection labels to put back: the backup's, and what uninject recorded
    removing (the later reading, for a namespace labelled or relabelled after the backup)."""
    return {**backup_namespaces, **current.uninjected}


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    runner, ref = tools.runner, backup_ref(inp)
    relabelled, missing = {}, []
    with cluster_access(inp.ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        current = this_run(ledger, inp, ref, step="reinject")
        current = ledger.advance(current, "reinjected")  # before any change: the record never under-states
        backup = read_backup(ref, runner, owner_of(inp), current.run_id)
        live = {n["metadata"]["name"] for n in items(runner, kube.get("namespaces"))}
        for ns, labels in sorted(injected_namespaces(backup.namespaces, current).items()):
            if ns not in live:
                missing.append(ns)
                continue
            to_set, to_remove = relabel(labels, backup.revision_tags, inp.decision.from_revision)
            runner(kube.label_namespace(ns, to_set, to_remove))
            relabelled[ns] = to_set
        # Pod templates uninject took the old revision label from, and gateways still labelled
        # for it: labelled for the new revision (a template change rolls them out onto it).
        templates = {**revision_labelled(runner, kube, inp.decision.from_revision, backup.revision_tags),
                     **current.relabelled_workloads}
        live_workloads = {f"{w.namespace}/{w.ref}" for w in workloads_in(runner, kube, {k.split("/", 1)[0] for k in templates})}
        retargeted = sorted(k for k in templates if k in live_workloads)
        for key in retargeted:
            namespace, kind, name = key.split("/", 2)
            runner(kube.merge_patch(kind, name, namespace, template_label_patch(inp.decision.to_revision)))
        to_restart = {w for w in workloads_in(runner, kube, set(relabelled)) if f"{w.namespace}/{w.ref}" not in retargeted} \
            if inp.options.restart_workloads and relabelled else set()
        restarted = [*restart(runner, kube, to_restart), *retargeted]
        for workload in restarted:
            namespace, ref_text = workload.split("/", 1)
            runner(kube.rollout_status(namespace, ref_text, ROLLOUT_TIMEOUT_SECONDS))
    if missing:
        tools.log(f"[{inp.ctx.cluster}] reinject: {len(missing)} namespaces gone since the backup were not relabelled")
    tools.log(f"[{inp.ctx.cluster}] reinject: {len(relabelled)} namespaces relabelled, {len(restarted)} workloads restarted")
    # Counts only: a later update gets this stdout in its environment (see relax-security).
    return {"cluster": inp.ctx.cluster, "relabelled": len(relabelled), "restarted": len(restarted), "missing_namespaces": len(missing)}
