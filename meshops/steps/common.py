"""Helpers shared by the chain's steps: the decision's skip, the backup reference from
state, and this run's record — checked, and re-created from its signed copy when someone
deleted it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.backup_store import BackupStore, Owner, run_location
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.kube import PLAN_KUBE, Kube
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import PHASES, BackupRef, Ledger, MigrationRecord, verified_record
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


def ledger_of(inp: StepInput, runner: Runner, kube: Kube) -> Ledger:
    return Ledger(runner, kube, inp.stack_key, inp.ctx)


def owner_of(inp: StepInput) -> Owner:
    """Whose backups this step may read: this stack's, of this cluster."""
    return Owner(inp.stack_key.stack, inp.ctx.project, inp.ctx.location, inp.ctx.cluster)


def signed_copy(ledger: Ledger, location: str) -> MigrationRecord | None:
    """The record copy beside the backup at `location` (its run's folder), if this stack
    signed it for this cluster; None when there is none; a refusal when it is not ours."""
    folder = run_location(location)
    document = BackupStore(folder, ledger.runner).read_record()
    if document is None:
        return None
    return verified_record(ledger.key, ledger.ctx, document, f"{folder}/record.json")


RECOVERED_FROM = "relaxed"
"""The least phase a re-created record claims: its copy may be older than the cluster, so
it counts as changed (the guard will not let it go) and its drift checks keep every object
the backup has (meshops.cluster.drift: `recovered`)."""


def recover(ledger: Ledger, copy: MigrationRecord) -> MigrationRecord:
    """Re-create the in-cluster record of an unfinished run from its signed copy."""
    phase = copy.phase if PHASES.index(copy.phase) > PHASES.index(RECOVERED_FROM) else RECOVERED_FROM
    return ledger.create(replace(copy, phase=phase, recovered=True, restore_verified=False, resource_version=""))


def this_run(ledger: Ledger, inp: StepInput, ref: BackupRef | None = None, finished_ok: bool = False) -> MigrationRecord:
    """The cluster's record, checked: signed by this stack, this run's, and (given `ref`, the
    backup in state) naming that backup or a supplementary one this run took in its place.

    A record deleted by hand while the run stood (a teammate, or an older README's abort
    advice) is re-created from its signed copy beside the backup, which state's `ref` locates;
    without `ref` the step refuses and says how to resume. With `finished_ok` (verify), a copy
    saying the run was verified stands for a record whose deletion succeeded although its
    step failed after it: it is returned as it is, not re-created."""
    decision = inp.decision
    found = ledger.read()
    if found is None:
        copy = signed_copy(ledger, ref.location) if ref is not None else None
        if copy is not None and copy.run_id == decision.run_id and copy.phase == "verified" and finished_ok:
            return copy
        if copy is None or copy.run_id != decision.run_id or copy.phase == "verified":
            raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record ({record.NAMESPACE}/{record.NAME}) of run "
                             f"{decision.run_id} is gone (deleted by hand?) and no unfinished signed copy of it was found "
                             "beside its backup; nothing was changed: set gke-mesh:migration.rerun to a new value and run "
                             "`pulumi up` (the backup step finds the run's copy and re-creates it)")
        found = recover(ledger, copy)
    if (found.stack, found.run_id) != (decision.stack, decision.run_id):
        raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record belongs to {found.describe()}, not to stack "
                         f"{decision.stack} run {decision.run_id}; two migrations must never run on one cluster")
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
