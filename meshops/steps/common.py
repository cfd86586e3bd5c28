"""Helpers shared by the chain's steps."""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.kube import PLAN_KUBE, Kube
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import BackupRef, MigrationRecord
from meshops.context import StepInput


def skipped(inp: StepInput) -> dict[str, Any] | None:
    """The result of a step when preflight decided to skip, else None."""
    assert inp.decision is not None
    if inp.decision.migrate:
        return None
    return {"cluster": inp.ctx.cluster, "skipped": True, "reason": inp.decision.reason}


def backup_ref(inp: StepInput) -> BackupRef:
    """This run's backup, as the producing step recorded it in Pulumi state."""
    found = (inp.backup_from or {}).get("backup")
    if not found:
        raise StepFailed(f"cluster {inp.ctx.cluster}: no backup reference in state from the backup step; re-run `pulumi up`")
    return BackupRef.from_dict(found)


def this_run(runner: Runner, kube: Kube, inp: StepInput, ref: BackupRef | None = None) -> MigrationRecord:
    """The cluster's record, checked: it is this stack's and run's, and (given `ref`) it
    names the backup state names, or a supplementary backup this run took in its place."""
    decision = inp.decision
    found = record.owned(runner, kube, decision.stack, decision.run_id, inp.ctx.cluster)
    if ref is not None and ref != found.backup and ref not in found.earlier_backups:
        raise StepFailed(f"cluster {inp.ctx.cluster}: the backup in Pulumi state ({ref.location}) is not the one the "
                         f"migration record names ({found.backup.location if found.backup else 'none'}); refusing to go on")
    return found


def require_manual(runner: Runner, inp: StepInput, current: MigrationRecord) -> None:
    """Destructive steps re-check the live management mode, fetched now (never a cached
    answer): with management automatic, Google would re-create what they delete. A
    membership this migration deleted (the record says so) manages nothing: a revert re-runs
    the purge before registering it again."""
    state = mesh_state(run_json(runner, gcloud.describe_mesh(inp.ctx.fleet_project)), inp.ctx.membership_location,
                       inp.decision.membership)
    if not state.found and current.membership_deleted:
        return
    if state.management != "MANAGEMENT_MANUAL":
        raise StepFailed(f"cluster {inp.ctx.cluster}: mesh management of {inp.decision.membership} is "
                         f"{state.management or 'not set'}, not MANAGEMENT_MANUAL; someone switched it back: "
                         "re-run `pulumi up` after checking who (disable-management sets it)")


RECORD_READ = PLAN_KUBE.get_one("configmap", record.NAME, record.NAMESPACE)
OWNER_READ = PLAN_KUBE.get_one("configmap", record.OWNER, record.NAMESPACE)
RECORD_WRITE = PLAN_KUBE.replace()
