"""Unregister and re-register the fleet membership, the way it was registered.

Google does not support going from manual back to automatic management on the same
membership; the field report succeeded only after re-registering, with
`clusters update --fleet-project`. A cluster whose own `fleet` block names the membership
(registered the GKE way) leaves and joins the fleet that way (`--clear-fleet-project`, then
`--fleet-project`); a membership made with `memberships register` is deleted and
registered again under its configured name (`--gke-uri`). Which way is recorded before
anything changes. Running it again is safe: management is manual at this point.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.fleet_state import membership_listed
from meshops.cluster.kube import cluster_access
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.backup import refuse_bound_features
from meshops.steps.common import RECORD_READ, RECORD_WRITE, ledger_of, skipped, this_run
from meshops.steps.preflight import resolve_membership

SUMMARY = ("Unregisters and re-registers the fleet membership the way it was registered: `clusters update --clear-fleet-project` "
           "then `--fleet-project` for a GKE-registered cluster (the field report's way), else `memberships delete` then `register`.")
STOPS = ("fleet features bound to the membership since the backup (unless listed in acceptMembershipFeatures); "
         "the new membership not pointing at this cluster; a migration record that is not this run's")
CLUSTER_DATA = False
NEEDS_DECISION = True
NEEDS_BACKUP = False
OPTIONS = ("reregister_membership", "accept_membership_features")


def commands(inp: StepInput) -> list[list[str]]:
    ctx = inp.ctx
    return [gcloud.describe_cluster(ctx), RECORD_READ, gcloud.list_features(ctx.fleet_project), gcloud.describe_cluster(ctx),
            RECORD_WRITE, gcloud.leave_fleet(ctx), gcloud.join_fleet(ctx),  # registered the GKE way
            gcloud.list_memberships(ctx), gcloud.delete_membership(ctx, ctx.membership),  # or with memberships register
            gcloud.register_membership(ctx, ctx.membership), RECORD_WRITE, gcloud.list_memberships(ctx)]


def registered_by_gke(described: Any, location: str, name: str) -> bool:
    """Whether the cluster's own `fleet` block (container v1 Cluster.fleet.membership) names
    this membership: it was registered the GKE way (`clusters update --fleet-project`)."""
    membership = str(((described or {}).get("fleet") or {}).get("membership", "")) if isinstance(described, dict) else ""
    return membership.endswith(f"/locations/{location}/memberships/{name}")


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    ctx, runner, name = inp.ctx, tools.runner, inp.decision.membership
    with cluster_access(ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        current = this_run(ledger, inp, step="reregister-membership")
        refuse_bound_features(inp, runner)  # bound since the backup, or re-registration just turned on
        described = run_json(runner, gcloud.describe_cluster(ctx))
        if not current.registration:  # read once, before anything changes: a resumed run must not guess
            current = ledger.advance(current, current.phase,
                                     registration="gke" if registered_by_gke(described, ctx.membership_location, name) else "membership")
        current = ledger.advance(current, "registered")  # before any change: the record never under-states
        if current.registration == "gke":
            # The field report's way: GKE unregisters and registers its own membership.
            if registered_by_gke(described, ctx.membership_location, name):
                current = ledger.advance(current, current.phase, membership_deleted=True)
                runner(gcloud.leave_fleet(ctx))
            runner(gcloud.join_fleet(ctx))
        else:
            if membership_listed(run_json(runner, gcloud.list_memberships(ctx)), name, ctx.membership_location):
                current = ledger.advance(current, current.phase, membership_deleted=True)
                runner(gcloud.delete_membership(ctx, name))
            runner(gcloud.register_membership(ctx, name))
        current = ledger.advance(current, current.phase, membership_deleted=False)
        after = run_json(runner, gcloud.list_memberships(ctx))
        try:
            resolve_membership(ctx, after, inp.decision.project_number)
        except StepFailed as error:
            raise StepFailed(f"after re-registering: {error}") from None
    tools.log(f"[{ctx.cluster}] reregister-membership: {name} re-registered in {ctx.fleet_project}")
    return {"cluster": ctx.cluster, "membership": name, "reregistered": True}
