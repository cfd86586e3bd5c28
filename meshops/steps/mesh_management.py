"""Switch one membership's mesh management: `disable-management` sets manual before the
purge, `enable-management` sets automatic after the channel change (provisioning then
starts on the channel the cluster has). Only this membership is touched: never
`fleet mesh disable`, which is fleet-wide."""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.fleet_state import membership_listed
from meshops.cluster.kube import cluster_access
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, ledger_of, skipped, this_run, write_copy


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
        deleted_check = [gcloud.list_memberships(inp.ctx)] if self.management == "manual" else []  # a re-run after re-registration only
        return [gcloud.describe_cluster(inp.ctx), RECORD_READ, *deleted_check,
                gcloud.set_mesh_management(inp.ctx, inp.ctx.membership, self.management), RECORD_WRITE]

    def run(self, inp: StepInput, tools: Tools) -> dict[str, Any]:
        if (result := skipped(inp)) is not None:
            return result
        with cluster_access(inp.ctx, tools.runner) as kube:
            ledger = ledger_of(inp, tools.runner, kube)
            current = this_run(ledger, inp, step=self.name)
            if self.management == "manual" and current.membership_deleted and not membership_listed(
                    run_json(tools.runner, gcloud.list_memberships(inp.ctx)), inp.decision.membership, inp.ctx.membership_location):
                # A re-run (a revert) after this migration deleted the membership: nothing is
                # managed any more; reregister-membership registers it again.
                tools.log(f"[{inp.ctx.cluster}] {self.name}: {inp.decision.membership} was deleted by this migration; nothing to switch")
                return {"cluster": inp.ctx.cluster, "management": self.management, "membership_deleted": True}
            if self.management == "automatic" and current.membership_deleted:
                # Re-registration was turned off after this migration deleted the membership.
                raise StepFailed(f"cluster {inp.ctx.cluster}: this migration deleted membership {inp.decision.membership} and has not "
                                 "registered it again; set gke-mesh:migration.reregisterMembership back to true (the backup is kept)")
            current = ledger.advance(current, self.phase)
            if self.management == "manual" and current.backup is not None:
                write_copy(ledger, current)  # management off: the copy beside the backup says so too
            tools.runner(gcloud.set_mesh_management(inp.ctx, inp.decision.membership, self.management))
        tools.log(f"[{inp.ctx.cluster}] {self.name}: {inp.decision.membership} is MANAGEMENT_{self.management.upper()}")
        return {"cluster": inp.ctx.cluster, "management": self.management}


disable = ManagementStep("disable-management", "manual", "manual",
                         "Switches this membership's mesh management to manual (never the fleet-wide `mesh disable`).")
enable = ManagementStep("enable-management", "automatic", "automatic",
                        "Switches this membership's mesh management back to automatic: provisioning starts on the cluster's new channel.")
