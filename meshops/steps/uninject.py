"""Remove the namespaces' injection labels and restart injected workloads so their
sidecars go away before the control plane does. The labels removed are written to the
migration record first (a namespace labelled after the backup is in no backup), so reinject
and verify put back and check exactly what was removed."""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.inventory import (
    INJECTION_LABELS, injected_pods, injection_labels, is_gateway, owners_of, restart, revision_labelled, revision_tags,
    template_label_patch
)
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.process import Tools
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, ledger_of, skipped, this_run

SUMMARY = ("Removes namespace injection labels and rollout-restarts injected workloads, except gateways: restarted without "
           "an injector their `image: auto` cannot be pulled, so they keep serving until reinject restarts them on the new revision.")
STOPS = "a migration record that is not this run's"
NEEDS_DECISION = True
NEEDS_BACKUP = False
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("restart_workloads",)


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    found = [gcloud.describe_cluster(inp.ctx), RECORD_READ, k.get("namespaces"), k.label_namespace("<namespace>", {}, list(INJECTION_LABELS))]
    if inp.options.restart_workloads:
        found += [k.get("pods", all_namespaces=True), k.get("replicasets", all_namespaces=True), k.restart("<namespace>", ["<kind>/<name>"])]
    return [*found, RECORD_WRITE]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    runner = tools.runner
    with cluster_access(inp.ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        current = this_run(ledger, inp, step="uninject")
        labelled = injection_labels(runner, kube)
        # Before any change: the record never under-states, and names every label it removes
        # (a retry finds fewer labelled namespaces: what an earlier try removed is kept).
        current = ledger.advance(current, "uninjected", uninjected={**labelled, **current.uninjected})
        for ns, labels in sorted(labelled.items()):
            runner(kube.label_namespace(ns, {}, sorted(labels)))
        restarted, orphans, gateways = [], [], []
        pods = injected_pods(runner, kube)
        replicasets = items(runner, kube.get("replicasets", all_namespaces=True))
        gateway_workloads, _ = owners_of([p for p in pods if is_gateway(p)], replicasets)
        # Pod templates labelled for the old revision inject whatever their namespace says:
        # their label comes off too (a template change: the workload rolls out without a
        # sidecar), written to the record first; gateways keep theirs and keep serving.
        keep = {f"{w.namespace}/{w.ref}" for w in gateway_workloads}
        relabelled = {k: v for k, v in revision_labelled(runner, kube, inp.decision.from_revision, revision_tags(runner, kube)).items()
                      if k not in keep}
        if relabelled:
            current = ledger.advance(current, current.phase, relabelled_workloads={**relabelled, **current.relabelled_workloads})
        for key in relabelled:
            namespace, kind, name = key.split("/", 2)
            runner(kube.merge_patch(kind, name, namespace, template_label_patch(None)))
        if inp.options.restart_workloads:
            workloads, orphans = owners_of([p for p in pods if not is_gateway(p)], replicasets)
            restarted = restart(runner, kube, {w for w in workloads - gateway_workloads if f"{w.namespace}/{w.ref}" not in relabelled})
            gateways = sorted(keep)
    if orphans:
        tools.log(f"[{inp.ctx.cluster}] uninject: {len(orphans)} pods without a restartable owner keep their sidecar until deleted "
                  "(list them: pods with an istio-proxy container, `kubectl get pods -A`)")
    if gateways:
        tools.log(f"[{inp.ctx.cluster}] uninject: {len(gateways)} gateway(s) keep serving with their proxy until reinject restarts them")
    tools.log(f"[{inp.ctx.cluster}] uninject: labels removed from {len(labelled)} namespaces and {len(relabelled)} pod templates, "
              f"{len(restarted)} workloads restarted")
    # Counts only (a later update gets this stdout in its environment, where thousands of
    # names would not fit); the namespaces are in the migration record.
    return {"cluster": inp.ctx.cluster, "unlabelled": len(labelled), "restarted": len(restarted), "not_restarted": len(orphans),
            "gateways_kept": len(gateways)}
