"""Delete and re-register the fleet membership under its configured name.

Google does not support going from manual back to automatic management on the same
membership; the field report succeeded only after re-registering. `register` with
`--gke-uri` keeps the configured name (GKE's own registration would name it after the
cluster). Running it again is safe: management is manual at this point.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.fleet_state import membership_listed
from meshops.cluster.kube import cluster_access
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.backup import refuse_bound_features
from meshops.steps.common import RECORD_READ, RECORD_WRITE, skipped, this_run
from meshops.steps.preflight import resolve_membership

SUMMARY = 'Deletes and re-registers the fleet membership under its configured name.'
STOPS = ("fleet features bound to the membership since the backup (unless listed in acceptMembershipFeatures); "
         "the new membership not pointing at this cluster; a migration record that is not this run's")
CLUSTER_DATA = False
NEEDS_DECISION = True
NEEDS_BACKUP = False
OPTIONS = ("reregister_membership", "accept_membership_features")


def commands(inp: StepInput) -> list[list[str]]:
    ctx = inp.ctx
    return [gcloud.describe_cluster(ctx), RECORD_READ, gcloud.list_features(ctx.fleet_project), RECORD_WRITE,
            gcloud.list_memberships(ctx), RECORD_WRITE, gcloud.delete_membership(ctx, ctx.membership),
            gcloud.register_membership(ctx, ctx.membership), RECORD_WRITE, gcloud.list_memberships(ctx)]


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    ctx, runner, name = inp.ctx, tools.runner, inp.decision.membership
    with cluster_access(ctx, runner) as kube:
        current = this_run(runner, kube, inp)
        refuse_bound_features(inp, runner)  # bound since the backup, or re-registration just turned on
        current = record.advance(runner, kube, current, "registered")  # before any change: the record never under-states
        if membership_listed(run_json(runner, gcloud.list_memberships(ctx)), name, ctx.membership_location):
            current = record.advance(runner, kube, current, current.phase, membership_deleted=True)
            runner(gcloud.delete_membership(ctx, name))
        runner(gcloud.register_membership(ctx, name))
        current = record.advance(runner, kube, current, current.phase, membership_deleted=False)
        after = run_json(runner, gcloud.list_memberships(ctx))
        try:
            resolve_membership(ctx, after, inp.decision.project_number)
        except StepFailed as error:
            raise StepFailed(f"after re-registering: {error}") from None
    tools.log(f"[{ctx.cluster}] reregister-membership: {name} re-registered in {ctx.fleet_project}")
    return {"cluster": ctx.cluster, "membership": name, "reregistered": True}
