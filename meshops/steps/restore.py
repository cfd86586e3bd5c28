"""Re-apply every backed-up Istio resource with server-side apply and verify each one
against the manifest's digests. This also brings back STRICT PeerAuthentications and
removed AuthorizationPolicies, and carries the old revision's mesh config map over to
the new revision's name."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from meshops import gcloud
from meshops.backup_store import Backup, BackupStore, planned_reads
from meshops.context import StepInput
from meshops.inventory import crds, live_objects
from meshops.kube import PLAN_KUBE, cluster_access, items
from meshops.objects import ARCHIVE_ONLY_GROUPS, digest, istio_kinds
from meshops.process import StepFailed, Tools
from meshops.steps.common import skipped

SUMMARY = "Server-side applies every backed-up object (STRICT mTLS and removed policies included) and checks each one's digest against the manifest."
STOPS = 'kinds no longer served; an object missing or different from the backup'
NEEDS_DECISION = True
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("stack", "backup_uri")


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    return [*planned_reads(inp.backup_location()), gcloud.describe_cluster(inp.ctx),
            k.get("customresourcedefinitions"), k.get("namespaces"), k.apply("<restore-manifest>"),
            k.get("<backed-up-resource>", all_namespaces=True)]


def carried_configmaps(backup: Backup, from_revision: str, to_revision: str) -> list[dict]:
    """The old revision's `istio-<revision>` mesh config, renamed for the new revision."""
    carried = []
    for cm in backup.configmaps:
        copy = json.loads(json.dumps(cm))
        if copy["metadata"]["name"] == f"istio-{from_revision}":
            copy["metadata"]["name"] = f"istio-{to_revision}"
        carried.append(copy)
    return carried


def _group(resource: str) -> str:
    return resource.split(".", 1)[1]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    runner, decision = tools.runner, inp.decision
    backup = BackupStore(inp.backup_location(), runner).read_verified()
    with cluster_access(inp.ctx, runner) as kube:
        kinds = {k.resource: k for k in istio_kinds(crds(runner, kube))}
        archived = sorted(r for r, objs in backup.objects.items() if objs and r not in kinds and _group(r) in ARCHIVE_ONLY_GROUPS)
        lost = sorted(r for r, objs in backup.objects.items() if objs and r not in kinds and _group(r) not in ARCHIVE_ONLY_GROUPS)
        if lost:
            raise StepFailed(f"cluster {inp.ctx.cluster}: kinds {', '.join(lost)} are not served after re-provisioning; "
                             f"their objects stay in the backup at {inp.backup_location()}")
        to_apply = [o for r, objs in sorted(backup.objects.items()) if r in kinds for o in objs]
        to_apply += carried_configmaps(backup, decision.from_revision, decision.to_revision)
        needed = {o["metadata"].get("namespace") for o in to_apply} - {None, ""}
        live_namespaces = {n["metadata"]["name"] for n in items(runner, kube.get("namespaces"))}
        namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(needed - live_namespaces)]
        if to_apply:
            folder = tempfile.mkdtemp(prefix="gke-mesh-restore-")
            try:
                path = os.path.join(folder, "restore.json")
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    json.dump({"apiVersion": "v1", "kind": "List", "items": namespaces + to_apply}, handle)
                runner(kube.apply(path))
            finally:
                os.remove(path) if os.path.exists(path) else None
                os.rmdir(folder)
        restored_kinds = [kinds[r] for r, objs in sorted(backup.objects.items()) if objs and r in kinds]
        live = live_objects(runner, kube, restored_kinds)
    live_digests = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): digest(o) for r, objs in live.items() for o in objs}
    wrong = [f"{r}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
             for r, objs in sorted(backup.objects.items()) if r in kinds for o in objs
             if live_digests.get((r, o["metadata"].get("namespace", ""), o["metadata"]["name"])) != digest(o)]
    if wrong:
        raise StepFailed(f"cluster {inp.ctx.cluster}: {len(wrong)} restored objects are missing or differ from the backup "
                         f"(first: {', '.join(wrong[:5])}); the backup is at {inp.backup_location()}")
    restored = sum(len(backup.objects[k.resource]) for k in restored_kinds)
    tools.log(f"[{inp.ctx.cluster}] restore: {restored} objects re-applied and verified by digest; namespaces created: {len(namespaces)}")
    if backup.archive:
        tools.log(f"[{inp.ctx.cluster}] restore: {len(backup.archive)} config maps/secrets of istio-system and asm-system stay "
                  f"in the backup's archive.json (not re-applied: the new control plane owns those namespaces)")
    return {"cluster": inp.ctx.cluster, "restored": restored, "verified": True, "archived_kinds": archived,
            "archived_objects": len(backup.archive),
            "created_namespaces": [n["metadata"]["name"] for n in namespaces]}
