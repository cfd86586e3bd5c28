"""Drift: Istio objects changed between this run's backup and the first step that changes
them (a teammate's edit between a failed run and its retry). relax-security and purge
compare the live objects with the backup before they change anything; what differs goes
into a supplementary backup of the same run, which the migration record then names and
every later step uses (see docs/architecture.md, "The migration record").
"""

from __future__ import annotations

from meshops import record
from meshops.backup_store import Backup, BackupStore
from meshops.context import StepInput
from meshops.inventory import crds, live_objects
from meshops.kube import Kube
from meshops.objects import AUTHORIZATION_POLICY, digest, istio_kinds, merge_patch, permissive_patch
from meshops.process import Tools
from meshops.record import BackupRef, MigrationRecord


def unchanged(live: dict, backed_up: dict) -> bool:
    """Whether a live object is its backed-up self, or that with relax-security's change."""
    patch = permissive_patch(backed_up)
    relaxed = merge_patch(backed_up, patch) if patch else backed_up
    return digest(live) in (digest(backed_up), digest(relaxed))


def drifted(backup: Backup, live: dict[str, list[dict]]) -> tuple[Backup | None, int]:
    """A supplementary backup holding what changed since `backup` (None if nothing did), and
    how many objects differ. Kept from the backup: unchanged objects, and an
    AuthorizationPolicy that is gone (relax-security may have removed it; restoring a
    policy errs on the safe side). Taken from the cluster: objects added or changed since.
    Dropped: other objects deleted since (a deliberate removal is not brought back)."""
    kept = backup.keyed()
    now = {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for r, objs in live.items() for o in objs}
    merged, differ = {}, 0
    for key, obj in now.items():
        if key in kept and unchanged(obj, kept[key]):
            merged[key] = kept[key]
        else:
            merged[key], differ = obj, differ + 1
    for key, obj in kept.items():
        if key not in now:
            if key[0] == AUTHORIZATION_POLICY:
                merged[key] = obj
            else:
                differ += 1
    if not differ:
        return None, 0
    objects: dict[str, list[dict]] = {r: [] for r in set(backup.objects) | set(live)}
    for (resource, _, _), obj in sorted(merged.items()):
        objects[resource].append(obj)
    return Backup(backup.cluster, backup.from_channel, backup.to_channel, backup.run_id, objects, backup.namespaces,
                  backup.injected, backup.configmaps, backup.archive), differ


def supplement_if_drifted(inp: StepInput, tools: Tools, kube: Kube, current: MigrationRecord,
                          backup: Backup) -> tuple[MigrationRecord, BackupRef]:
    """Compare the live Istio objects with this run's backup; when they differ, write a
    supplementary backup of the same run, record it, and return the record and its reference."""
    ref = current.backup
    live = live_objects(tools.runner, kube, istio_kinds(crds(tools.runner, kube)))
    supplement, differ = drifted(backup, live)
    if supplement is None:
        return current, ref
    location = f"{ref.location}/supplement-{len(current.earlier_backups) + 1}"
    store = BackupStore(location, tools.runner)
    new_ref = store.write(supplement)
    current = record.advance(tools.runner, kube, current, current.phase, backup=new_ref,
                             earlier_backups=(*current.earlier_backups, ref))
    store.write_record(current)
    tools.log(f"[{inp.ctx.cluster}] {differ} Istio objects changed since the backup; "
              f"a supplementary backup of this run holds them at {location}")
    return current, new_ref
