"""Switch one membership's mesh management: `disable-management` sets manual before the
purge, `enable-management` sets automatic after the channel change (provisioning then
starts on the channel the cluster has). Only this membership is touched: never
`fleet mesh disable`, which is fleet-wide."""

from __future__ import annotations

from typing import Any

from meshops import gcloud, record
from meshops.context import StepInput
from meshops.kube import cluster_access
from meshops.process import Tools
from meshops.steps.common import RECORD_READ, RECORD_WRITE, skipped, this_run


class ManagementStep:
    """A step module's interface (NEEDS_DECISION, OPTIONS, commands, run) for one mode."""

    NEEDS_DECISION = True
    NEEDS_BACKUP = False
    CLUSTER_DATA = False
    OPTIONS: tuple[str, ...] = ()

    STOPS = ""

    def __init__(self, name: str, management: str, phase: str, summary: str):
        self.name, self.management, self.phase, self.SUMMARY = name, management, phase, summary

    def commands(self, inp: StepInput) -> list[list[str]]:
        return [gcloud.describe_cluster(inp.ctx), RECORD_READ, gcloud.set_mesh_management(inp.ctx, inp.ctx.membership, self.management),
                RECORD_WRITE]

    def run(self, inp: StepInput, tools: Tools) -> dict[str, Any]:
        if (result := skipped(inp)) is not None:
            return result
        with cluster_access(inp.ctx, tools.runner) as kube:
            record.advance(tools.runner, kube, this_run(tools.runner, kube, inp), self.phase)
            tools.runner(gcloud.set_mesh_management(inp.ctx, inp.decision.membership, self.management))
        tools.log(f"[{inp.ctx.cluster}] {self.name}: {inp.decision.membership} is MANAGEMENT_{self.management.upper()}")
        return {"cluster": inp.ctx.cluster, "management": self.management}


disable = ManagementStep("disable-management", "manual", "manual",
                         "Switches this membership's mesh management to manual (never the fleet-wide `mesh disable`).")
enable = ManagementStep("enable-management", "automatic", "automatic",
                        "Switches this membership's mesh management back to automatic: provisioning starts on the cluster's new channel.")
