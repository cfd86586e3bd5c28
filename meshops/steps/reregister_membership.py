"""Unregister and re-register the fleet membership, the way it was registered.

Google does not support going from manual back to automatic management on the same
membership (Cloud Service Mesh, "Supported features (managed)", limitations), nor does it
recommend unregistering and registering again (fleet docs, "Unregister a cluster": Workload
Identity can change); re-registration is this workaround's way round the first, and can be
turned off (`reregisterMembership: false`).

The cluster's own `fleet` block decides how (container v1 Cluster.fleet: `membership`, and
`preRegistered`, "whether the cluster has been registered through the fleet API"): a
cluster registered with `clusters create/update --fleet-project` (fleet.membership names
it, preRegistered false) leaves and joins that way (`--clear-fleet-project`, then
`--fleet-project`), as the fleet unregister page documents for those clusters; a cluster
registered through the fleet API is unregistered with `memberships unregister --gke-uri`
(which checks the membership is this cluster's and deletes it, with no Kubernetes client:
gcloud 528 surface/container/fleet/memberships/unregister.py) and registered again under its
configured name. Which way is recorded before anything changes. Running it again is safe:
management is manual at this point.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.fleet_state import membership_listed
from meshops.cluster.kube import PLAN_KUBE, cluster_access, in_batches, items
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.backup import refuse_bound_features
from meshops.steps.common import RECORD_READ, RECORD_WRITE, ledger_of, skipped, this_run
from meshops.steps.preflight import resolve_membership

SUMMARY = ("Unregisters and re-registers the fleet membership the way it was registered: `clusters update --clear-fleet-project` "
           "then `--fleet-project` for a GKE-registered cluster (as the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順' re-joined), "
           "else `memberships delete` then `register`.")
STOPS = ("fleet features bound to the membership since the backup (unless listed in acceptMembershipFeatures); "
         "the new membership not pointing at this cluster; a migration record that is not this run's")
CLUSTER_DATA = False
NEEDS_DECISION = True
NEEDS_BACKUP = False
OPTIONS = ("reregister_membership", "accept_membership_features")


def commands(inp: StepInput) -> list[list[str]]:
    ctx = inp.ctx
    return [gcloud.describe_cluster(ctx), RECORD_READ, gcloud.list_memberships(ctx), gcloud.list_features(ctx.fleet_project),
            gcloud.list_membership_bindings(ctx, ctx.membership), gcloud.describe_cluster(ctx),
            RECORD_WRITE, gcloud.leave_fleet(ctx), gcloud.join_fleet(ctx),  # registered the GKE way
            gcloud.unregister_membership(ctx, ctx.membership),  # or through the fleet API
            gcloud.register_membership(ctx, ctx.membership),
            PLAN_KUBE.get("services", all_namespaces=True), PLAN_KUBE.delete("services", ["<synthetic-service>"], "<namespace>"),
            RECORD_WRITE, gcloud.list_memberships(ctx)]


def fleet_names(described: Any, location: str, name: str) -> bool:
    """Whether the cluster's own `fleet` block names this membership (it is registered)."""
    membership = str(((described or {}).get("fleet") or {}).get("membership", "")) if isinstance(described, dict) else ""
    return membership.endswith(f"/locations/{location}/memberships/{name}")


def registered_by_gke(described: Any, location: str, name: str) -> bool:
    """Whether the cluster was registered the GKE way (`clusters create/update
    --fleet-project`): its fleet block names the membership and it was not registered
    through the fleet API (`preRegistered`)."""
    pre_registered = ((described or {}).get("fleet") or {}).get("preRegistered") if isinstance(described, dict) else None
    return fleet_names(described, location, name) and pre_registered is not True


SYNTHETIC = ("istio.io/owned-by", "gsmconfig.gke.io")
NEG_ANNOTATION = "cloud.google.com/neg"


def clean_up_traffic_director(inp: StepInput, tools: Tools, kube) -> None:
    """What the TRAFFIC_DIRECTOR implementation may leave behind once a cluster leaves the fleet
    (Cloud Service Mesh troubleshooting, "Resolving cleanup issues"): its synthetic Services
    (labelled istio.io/owned-by=gsmconfig.gke.io) are deleted; `cloud.google.com/neg`
    annotations are only counted, since a team's own Services carry them too (container-native
    load balancing) and cannot be told apart: the page's advice is left to the operator."""
    synthetic: dict[str, list[str]] = {}
    annotated = 0
    for service in items(tools.runner, kube.get("services", all_namespaces=True)):
        meta = service.get("metadata") or {}
        if (meta.get("labels") or {}).get(SYNTHETIC[0]) == SYNTHETIC[1]:
            synthetic.setdefault(str(meta.get("namespace", "")), []).append(str(meta.get("name", "")))
        elif NEG_ANNOTATION in (meta.get("annotations") or {}):
            annotated += 1
    for namespace, names in sorted(synthetic.items()):
        for batch in in_batches(sorted(names)):
            tools.runner(kube.delete("services", batch, namespace))
    if synthetic or annotated:
        tools.log(f"[{inp.ctx.cluster}] reregister-membership: {sum(map(len, synthetic.values()))} synthetic TRAFFIC_DIRECTOR "
                  f"services deleted; {annotated} other services carry {NEG_ANNOTATION} (left alone: remove those the mesh "
                  "added, as Cloud Service Mesh's \"Resolving cleanup issues\" page says)")


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    ctx, runner, name = inp.ctx, tools.runner, inp.decision.membership
    with cluster_access(ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        current = this_run(ledger, inp, step="reregister-membership")
        # A resumed run may find the membership gone already (unregistered before a refused
        # registration): it has no bindings left to list.
        listed = membership_listed(run_json(runner, gcloud.list_memberships(ctx)), name, ctx.membership_location)
        refuse_bound_features(inp, runner, membership_exists=listed)  # bound since the backup, or re-registration just turned on
        described = run_json(runner, gcloud.describe_cluster(ctx))
        if not current.registration:  # read once, before anything changes: a resumed run must not guess
            current = ledger.advance(current, current.phase,
                                     registration="gke" if registered_by_gke(described, ctx.membership_location, name) else "membership")
        current = ledger.advance(current, "registered")  # before any change: the record never under-states
        if current.registration == "gke":
            # The way the 2025 write-up re-joined: GKE unregisters and registers its own membership.
            if fleet_names(described, ctx.membership_location, name):
                current = ledger.advance(current, current.phase, membership_deleted=True)
                runner(gcloud.leave_fleet(ctx))
            runner(gcloud.join_fleet(ctx))
        else:
            if listed:
                current = ledger.advance(current, current.phase, membership_deleted=True)
                runner(gcloud.unregister_membership(ctx, name))
            runner(gcloud.register_membership(ctx, name))
        if inp.decision.implementation == "TRAFFIC_DIRECTOR":
            clean_up_traffic_director(inp, tools, kube)
        current = ledger.advance(current, current.phase, membership_deleted=False)
        after = run_json(runner, gcloud.list_memberships(ctx))
        try:
            resolve_membership(ctx, after, inp.decision.project_number)
        except StepFailed as error:
            raise StepFailed(f"after re-registering: {error}") from None
    tools.log(f"[{ctx.cluster}] reregister-membership: {name} re-registered in {ctx.fleet_project}")
    return {"cluster": ctx.cluster, "membership": name, "reregistered": True}
