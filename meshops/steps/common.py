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
from meshops.cluster.record import (
    FINISHED, PHASES, BackupRef, Ledger, MigrationRecord, finished_document, finished_outcome, signed_document, verified_record
)
from meshops.cluster.runs import Run
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


def write_copy(ledger: Ledger, record: MigrationRecord) -> None:
    """The record's signed copy beside its backup: written at every change of course
    (backed up, first change, purge, restore verified, verified), so an older in-cluster
    record put back is told apart by its lower sequence."""
    BackupStore(run_location(record.backup.location), ledger.runner).write_record(signed_document(ledger.key, ledger.ctx, record))


def finish(ledger: Ledger, record: MigrationRecord, outcome: str) -> None:
    """Mark the run over beside its backup (`verified`, or `dropped`: it changed nothing)."""
    if record.backup is not None:
        BackupStore(run_location(record.backup.location), ledger.runner).write_finished(
            finished_document(ledger.key, ledger.ctx, record.run_id, outcome))


def finished(ledger: Ledger, run: Run) -> str | None:
    """How `run` ended, per its signed marker (found also when deleted from a versioned bucket), or None."""
    if FINISHED not in run.files:
        return None
    document = BackupStore(run.folder, ledger.runner).read_json(FINISHED, run.files[FINISHED])
    return finished_outcome(ledger.key, ledger.ctx, document, run.run_id)


def rolled_back(ledger: Ledger, record: MigrationRecord) -> str | None:
    """Why `record` is an older version put back, if its signed copy says so: the copy was
    written later (a higher sequence) or the run is over."""
    if record.backup is None:
        return None
    folder = run_location(record.backup.location)
    copy = signed_copy(ledger, folder)
    if copy is not None and copy.run_id == record.run_id and copy.sequence > record.sequence:
        return f"its signed copy at {folder} was written later (phase {copy.phase}, write {copy.sequence}; the record: {record.sequence})"
    outcome = finished_outcome(ledger.key, ledger.ctx, BackupStore(folder, ledger.runner).read_json(FINISHED), record.run_id)
    if outcome is not None:
        return f"run {record.run_id} is over ({outcome}, per {folder}/{FINISHED})"
    return None


RECOVERED_FROM = "relaxed"
"""The least phase a re-created record claims: its copy may be older than the cluster, so
it counts as changed (the guard will not let it go) and its drift checks keep every object
the backup has (meshops.cluster.drift: `recovered`)."""
FLOOR = {"relax-security": "backed-up", "disable-management": "backed-up", "uninject": "manual", "purge": "uninjected",
         "reregister-membership": "purged", "enable-management": "purged", "wait-ready": "automatic", "restore": "ready",
         "reinject": "restored", "verify": "reinjected"}
"""The least phase the record has when a step runs: the one the step before it always writes,
proved by that step's result in Pulumi state. A record below it was put back from an older
version (someone kept a copy): acting on it would, say, count the purge's deletions as a
teammate's intent."""


def at_least(phase: str, floor: str) -> str:
    return phase if PHASES.index(phase) >= PHASES.index(floor) else floor


def recover(ledger: Ledger, copy: MigrationRecord, floor: str = RECOVERED_FROM) -> MigrationRecord:
    """Re-create the in-cluster record of an unfinished run from its signed copy, at least at
    `floor` (state shows the steps before the current one done)."""
    phase = at_least(at_least(copy.phase, RECOVERED_FROM), floor)
    return ledger.create(replace(copy, phase=phase, recovered=True, restore_verified=False, resource_version=""))


def this_run(ledger: Ledger, inp: StepInput, ref: BackupRef | None = None, finished_ok: bool = False,
             step: str = "") -> MigrationRecord:
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
        found = recover(ledger, copy, FLOOR.get(step, RECOVERED_FROM))
    if (found.stack, found.run_id) != (decision.stack, decision.run_id):
        raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record belongs to {found.describe()}, not to stack "
                         f"{decision.stack} run {decision.run_id}; two migrations must never run on one cluster")
    floor = FLOOR.get(step)
    if floor and not found.reached(floor):
        raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record says phase {found.phase}, but this run is already past "
                         f"it ({step} runs after phase {floor}, per Pulumi state): an older version of the record was put back. "
                         f"Nothing was changed; find out who wrote {ledger.where}, then delete it and run `pulumi up` (it is "
                         "re-created from its signed copy)")
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
