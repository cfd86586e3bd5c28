"""Switch the membership's mesh management back to automatic: provisioning starts, on the
channel the cluster has now."""

from __future__ import annotations

from typing import Any

from meshops import gcloud
from meshops.context import StepInput
from meshops.process import Tools
from meshops.steps.common import skipped

NEEDS_DECISION = True
OPTIONS: tuple[str, ...] = ()


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.set_mesh_management(inp.ctx, inp.ctx.membership, "automatic")]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    tools.runner(gcloud.set_mesh_management(inp.ctx, inp.decision.membership, "automatic"))
    tools.log(f"[{inp.ctx.cluster}] enable-management: {inp.decision.membership} is MANAGEMENT_AUTOMATIC; provisioning {inp.decision.to_revision}")
    return {"cluster": inp.ctx.cluster, "management": "automatic"}
