"""Put injection back: `istio.io/rev=asm-managed*` becomes the channel-agnostic
`istio-injection=enabled`, other labels come back as they were; then restart the
workloads of those namespaces so they get the new revision's proxy."""

from __future__ import annotations

from typing import Any

from meshops import gcloud
from meshops.backup_store import BackupStore, planned_reads
from meshops.context import StepInput, channel_of_revision
from meshops.inventory import restart, workloads_in
from meshops.kube import PLAN_KUBE, cluster_access, items
from meshops.process import Tools
from meshops.steps.common import skipped

SUMMARY = 'Relabels namespaces (istio.io/rev=asm-managed* becomes istio-injection=enabled) and restarts their workloads onto the new proxy.'
STOPS = ''
NEEDS_DECISION = True
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("stack", "backup_uri", "restart_workloads")


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    found = [*planned_reads(inp.backup_location()), gcloud.describe_cluster(inp.ctx),
             k.get("namespaces"), k.label_namespace("<namespace>", {"istio-injection": "enabled"}, ["istio.io/rev"])]
    if inp.options.restart_workloads:
        found += [k.get("deployments,statefulsets,daemonsets", all_namespaces=True), k.restart("<namespace>", ["<kind>/<name>"])]
    return found


def relabel(labels: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(labels to set, labels to remove) for a namespace's backed-up injection labels."""
    revision = labels.get("istio.io/rev")
    if revision is not None and channel_of_revision(revision):
        return {"istio-injection": "enabled"}, ["istio.io/rev"]
    return dict(labels), []


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    runner = tools.runner
    backup = BackupStore(inp.backup_location(), runner).read_verified()
    relabelled, missing = {}, []
    with cluster_access(inp.ctx, runner) as kube:
        live = {n["metadata"]["name"] for n in items(runner, kube.get("namespaces"))}
        for ns, labels in sorted(backup.namespaces.items()):
            if ns not in live:
                missing.append(ns)
                continue
            to_set, to_remove = relabel(labels)
            runner(kube.label_namespace(ns, to_set, to_remove))
            relabelled[ns] = to_set
        restarted = restart(runner, kube, workloads_in(runner, kube, set(relabelled))) if inp.options.restart_workloads and relabelled else []
    if missing:
        tools.log(f"[{inp.ctx.cluster}] reinject: namespaces gone since the backup, not relabelled: {', '.join(missing)}")
    tools.log(f"[{inp.ctx.cluster}] reinject: {len(relabelled)} namespaces relabelled, {len(restarted)} workloads restarted")
    return {"cluster": inp.ctx.cluster, "relabelled": relabelled, "restarted": restarted, "missing_namespaces": missing}
