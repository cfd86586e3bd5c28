"""Back up every Istio custom resource, the injection labels and the mesh config maps;
read the backup back and verify it before the step succeeds."""

from __future__ import annotations

from typing import Any

from meshops import gcloud
from meshops.backup_store import BackupStore, planned_writes
from meshops.context import StepInput
from meshops.inventory import collect
from meshops.kube import PLAN_KUBE, cluster_access
from meshops.process import StepFailed, Tools
from meshops.steps.common import skipped

SUMMARY = 'Backs up every *.istio.io object, namespace injection labels, the istio-<revision> config maps and (archive only) every config map and secret of istio-system and asm-system; reads the backup back and verifies counts and sha256.'
STOPS = 'a backup that does not verify'
NEEDS_DECISION = True
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("stack", "backup_uri")


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    return [gcloud.describe_cluster(inp.ctx), k.get("customresourcedefinitions"),
            k.get("<istio-resource>", all_namespaces=True), k.get("namespaces"),
            k.get("configmaps", namespace="istio-system"), k.get("configmaps,secrets", namespace="istio-system"),
            k.get("configmaps,secrets", namespace="asm-system"), *planned_writes(inp.backup_location())]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    decision, location = inp.decision, inp.backup_location()
    store = BackupStore(location, tools.runner)
    if store.exists():
        # Resuming: this run's backup was written and verified before; never overwrite it
        # with what may by now be a partly purged cluster.
        backup = store.read_verified()
        tools.log(f"[{inp.ctx.cluster}] backup: reusing verified backup at {location} ({backup.object_count} objects)")
        return {"cluster": inp.ctx.cluster, "location": location, "objects": backup.object_count, "reused": True}
    with cluster_access(inp.ctx, tools.runner) as kube:
        backup = collect(tools.runner, kube, inp.ctx.cluster, decision.from_channel, decision.to_channel,
                         decision.run_id, decision.from_revision)
    store.write(backup)
    verified = store.read_verified()
    if verified.object_count != backup.object_count:
        raise StepFailed(f"backup at {location}: read back {verified.object_count} objects, wrote {backup.object_count}")
    counts = {resource: len(objs) for resource, objs in sorted(backup.objects.items()) if objs}
    tools.log(f"[{inp.ctx.cluster}] backup: {backup.object_count} objects in {len(backup.objects)} kinds verified at {location}")
    return {"cluster": inp.ctx.cluster, "location": location, "objects": backup.object_count, "counts": counts,
            "namespaces": sorted(backup.namespaces), "archived": len(backup.archive), "reused": False}
