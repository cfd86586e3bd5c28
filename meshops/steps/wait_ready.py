"""Wait until the fleet reports the control plane ACTIVE on the expected revision.

Polls with backoff (5 s growing to 30 s), prints a progress line per poll, and fails at
the first failed state with a diagnosis: the cause and the command that fixes it.
"""

from __future__ import annotations

from typing import Any

from meshops import gcloud
from meshops.context import StepInput
from meshops.diagnose import diagnose
from meshops.fleet_state import MeshState, mesh_state
from meshops.process import StepFailed, Tools, run_json
from meshops.steps.common import skipped

SUMMARY = 'Polls the fleet (5 s growing to 30 s) until the control plane is ACTIVE with REVISION_READY on the target revision.'
STOPS = 'STALLED / FAILED_PRECONDITION / known error codes, each with its cause and fixing command (REVISION_STALLED with connectgateway off: gcloud services enable connectgateway.googleapis.com); the wait timeout'
CLUSTER_DATA = False
NEEDS_DECISION = True
OPTIONS = ("wait_timeout_seconds",)
FIRST_DELAY, MAX_DELAY, GROWTH = 5.0, 30.0, 1.5


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_mesh(inp.ctx.fleet_project), gcloud.list_enabled_services(inp.ctx.fleet_project)]


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
    diagnosis = diagnose(state, inp.ctx, inp.decision.membership, None)
    if diagnosis is None:
        return False
    if diagnosis.code == "REVISION_STALLED":
        diagnosis = diagnose(state, inp.ctx, inp.decision.membership, _enabled_apis(tools, inp.ctx.fleet_project))
    raise StepFailed(f"cluster {inp.ctx.cluster}: {diagnosis.line()}")


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    ctx, timeout = inp.ctx, inp.options.wait_timeout_seconds
    start, polls = tools.now(), 0
    for delay in delays():
        polls += 1
        state = mesh_state(run_json(tools.runner, gcloud.describe_mesh(ctx.fleet_project)), ctx.membership_location, inp.decision.membership)
        elapsed = tools.now() - start
        tools.log(f"[{ctx.cluster}] wait-ready: poll {polls} at {elapsed:.0f}s: {state.summary()}")
        if check(state, inp, tools):
            return {"cluster": ctx.cluster, "revision": state.ready_revision(), "implementation": state.implementation,
                    "polls": polls, "seconds": round(elapsed)}
        if elapsed + delay > timeout:
            raise StepFailed(f"cluster {ctx.cluster}: control plane not ready after {timeout}s ({state.summary()}); "
                             "raise gke-mesh:migration.waitTimeout or check the fleet")
        tools.sleep(delay)
    raise AssertionError("unreachable")
