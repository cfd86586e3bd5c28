"""Wait until the fleet reports the control plane ACTIVE on the expected revision.

Polls with backoff (5 s growing to 30 s), prints a progress line per poll, and fails at
the first failed state with a diagnosis: the cause and the command that fixes it.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.diagnose import diagnose
from meshops.cluster.fleet_reader import describe_mesh, reader_of
from meshops.cluster.fleet_state import MeshState, mesh_state
from meshops.cluster.kube import cluster_access
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, ledger_of, skipped, this_run

SUMMARY = 'Polls the fleet (5 s growing to 30 s, one shared describe per project every ~21 s) until the control plane is ACTIVE with REVISION_READY on the target revision.'
STOPS = 'STALLED / FAILED_PRECONDITION / known error codes, each with its cause and fixing command (REVISION_STALLED with connectgateway off: gcloud services enable connectgateway.googleapis.com); the wait timeout'
CLUSTER_DATA = False
NEEDS_DECISION = True
NEEDS_BACKUP = False
OPTIONS = ("wait_timeout_seconds",)
FIRST_DELAY, MAX_DELAY, GROWTH = 5.0, 30.0, 1.5


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_mesh(inp.ctx.fleet_project), gcloud.list_enabled_services(inp.ctx.fleet_project),
            gcloud.describe_cluster(inp.ctx), RECORD_READ, RECORD_WRITE]


def delays(first: float = FIRST_DELAY, cap: float = MAX_DELAY, growth: float = GROWTH):
    delay = first
    while True:
        yield delay
        delay = min(delay * growth, cap)


def _enabled_apis(tools: Tools, project: str) -> set[str] | None:
    try:
        services = run_json(tools.runner, gcloud.list_enabled_services(project))
    except StepFailed:
        return None
    return {str((s.get("config") or {}).get("name") or s.get("name", "")).rsplit("/", 1)[-1] for s in services or []}


def check(state: MeshState, inp: StepInput, tools: Tools) -> bool:
    """True when ready; raises StepFailed on a failure; False while still provisioning."""
    expected = inp.decision.to_revision
    ready = state.ready_revision()
    if state.control_plane_state == "ACTIVE" and ready == expected:
        return True
    if state.control_plane_state == "ACTIVE" and ready and ready != expected:
        raise StepFailed(f"cluster {inp.ctx.cluster}: control plane is ACTIVE on {ready}, expected {expected}: "
                         "the cluster's channel was not the target when provisioning started")
    diagnosis = diagnose(state, inp.ctx, inp.decision.membership, None, inp.decision.fleet_project_number)
    if diagnosis is None:
        return False
    if diagnosis.code == "REVISION_STALLED":
        diagnosis = diagnose(state, inp.ctx, inp.decision.membership, _enabled_apis(tools, inp.ctx.fleet_project),
                              inp.decision.fleet_project_number)
    raise StepFailed(f"cluster {inp.ctx.cluster}: {diagnosis.line()}")


class Waiter:
    """One cluster's wait, one poll at a time, so a driver (the step, or a bench with a
    simulated clock and many clusters) decides how to sleep between polls."""

    def __init__(self, inp: StepInput, tools: Tools):
        self.inp, self.tools = inp, tools
        self.start, self.polls, self._delays = tools.now(), 0, delays()

    def poll(self) -> float | dict[str, Any]:
        """The seconds to wait before the next poll, or the result once ready."""
        ctx, timeout = self.inp.ctx, self.inp.options.wait_timeout_seconds
        self.polls += 1
        state = mesh_state(describe_mesh(self.tools, ctx.fleet_project), ctx.membership_location, self.inp.decision.membership)
        elapsed = self.tools.now() - self.start
        self.tools.log(f"[{ctx.cluster}] wait-ready: poll {self.polls} at {elapsed:.0f}s: {state.summary()}")
        try:
            ready = check(state, self.inp, self.tools)
        except StepFailed:
            # Never fail on a shared answer: it may predate the fix the operator just applied
            # (a STALLED answer cached by the failed run, read by the immediate re-run).
            state = mesh_state(reader_of(self.tools).describe(ctx.fleet_project, fresh=True), ctx.membership_location,
                               self.inp.decision.membership)
            ready = check(state, self.inp, self.tools)
        if ready:
            return {"cluster": ctx.cluster, "revision": state.ready_revision(), "implementation": state.implementation,
                    "polls": self.polls, "seconds": round(elapsed)}
        # Backoff (5 s growing to 30 s), but never past the moment the shared fleet answer
        # may be refreshed (plus 0.5-1.5 s of jitter, so one poller fetches and the others
        # read its answer): every cluster of a project sees a fresh answer ~20 s apart.
        refresh = reader_of(self.tools).refresh_in(ctx.fleet_project) + 0.5 + self.tools.random()
        delay = min(next(self._delays), refresh)
        if elapsed + delay > timeout:
            raise StepFailed(f"cluster {ctx.cluster}: control plane not ready after {timeout}s ({state.summary()}); "
                             "raise gke-mesh:migration.waitTimeout or check the fleet")
        return delay


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    waiter = Waiter(inp, tools)
    while True:
        outcome = waiter.poll()
        if isinstance(outcome, dict):
            break
        tools.sleep(outcome)
    with cluster_access(inp.ctx, tools.runner) as kube:
        ledger = ledger_of(inp, tools.runner, kube)
        ledger.advance(this_run(ledger, inp, step="wait-ready"), "ready")
    return outcome
