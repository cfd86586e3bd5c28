"""Read the live state and decide: migrate or skip. Prints one JSON decision.

Later steps receive this decision from Pulumi state, so a re-run after a failure sees
the same one.
"""

from __future__ import annotations

import time
from typing import Any

from meshops import gcloud
from meshops.context import Decision, StepContext, StepInput, channel_of_revision, revision_of
from meshops.fleet_state import mesh_state, registers
from meshops.kube import PLAN_KUBE, cluster_access, items
from meshops.process import StepFailed, Tools, run_json
from meshops.steps.release_channel import current_channel

SUMMARY = 'Checks the membership registers this cluster, reads the cluster channel, the fleet state and the ControlPlaneRevisions, and decides migrate or skip.'
STOPS = 'a membership that registers another cluster; a MODERNIZATION_* condition'
CLUSTER_DATA = False
NEEDS_DECISION = False
OPTIONS: tuple[str, ...] = ()
CPR = "controlplanerevisions.mesh.cloud.google.com"


def commands(inp: StepInput) -> list[list[str]]:
    ctx = inp.ctx
    return [gcloud.describe_cluster(ctx), gcloud.list_memberships(ctx), gcloud.describe_mesh(ctx.fleet_project),
            PLAN_KUBE.get("customresourcedefinitions"), PLAN_KUBE.get(CPR, namespace="istio-system")]


def _registers(link: str, ctx: StepContext) -> bool:
    return registers(link, ctx.project, ctx.location, ctx.cluster)


def resolve_membership(ctx: StepContext, memberships: Any) -> str:
    """The configured membership, checked: it must exist and register this cluster."""
    if not isinstance(memberships, list):
        raise StepFailed("gcloud container fleet memberships list returned no list")
    pointing, configured = [], None
    for m in memberships:
        name = str(m.get("name", ""))
        short, location = name.rsplit("/", 1)[-1], (name.split("/locations/", 1)[-1].split("/", 1)[0] if "/locations/" in name else "")
        link = str(((m.get("endpoint") or {}).get("gkeCluster") or {}).get("resourceLink", ""))
        if _registers(link, ctx):
            pointing.append(f"{short} ({location})")
        if short == ctx.membership and location == ctx.membership_location:
            configured = link
    if configured is not None and _registers(configured, ctx):
        return ctx.membership
    if pointing:
        raise StepFailed(f"cluster {ctx.cluster}: configured membership {ctx.membership} ({ctx.membership_location}) "
                         f"{'registers another cluster' if configured is not None else 'does not exist'}; the membership of this cluster is "
                         f"{', '.join(pointing)}: set membership/membershipLocation in its gke-mesh:clusters entry")
    raise StepFailed(f"cluster {ctx.cluster}: no membership in fleet project {ctx.fleet_project} registers it; "
                     f"register it first: gcloud container fleet memberships register {ctx.membership} "
                     f"--gke-uri={gcloud.cluster_uri(ctx)} --enable-workload-identity --project {ctx.fleet_project} "
                     f"--location {ctx.membership_location}")


def run(inp: StepInput, tools: Tools) -> Decision:
    ctx, runner = inp.ctx, tools.runner
    cluster_channel = current_channel(run_json(runner, gcloud.describe_cluster(ctx)))
    membership = resolve_membership(ctx, run_json(runner, gcloud.list_memberships(ctx)))
    state = mesh_state(run_json(runner, gcloud.describe_mesh(ctx.fleet_project)), ctx.membership_location, membership)
    modernization = [c for c in state.codes() if c.startswith("MODERNIZATION_")]
    if modernization:
        raise StepFailed(f"cluster {ctx.cluster}: {modernization[0]}: a control plane modernization is in progress; "
                         "never de-provision during one: wait for it to finish")
    with cluster_access(ctx, runner) as kube:
        crd_names = {c["metadata"]["name"] for c in items(runner, kube.get("customresourcedefinitions"))}
        revisions = items(runner, kube.get(CPR, namespace="istio-system")) if CPR in crd_names else []
    managed = sorted(r["metadata"]["name"] for r in revisions if channel_of_revision(r["metadata"]["name"]))
    from_revision = state.ready_revision() or (managed[0] if managed else "none")
    mesh_channel = channel_of_revision(from_revision) or "none"
    target = ctx.channel
    aligned = cluster_channel == target and mesh_channel == target and state.control_plane_state == "ACTIVE" and len(managed) <= 1
    if aligned:
        action, reason = "skip", f"cluster and mesh already on {target}, control plane ACTIVE"
    else:
        action = "migrate"
        reason = (f"cluster channel {cluster_channel}, mesh revision {from_revision} ({mesh_channel}), "
                  f"control plane {state.control_plane_state}; target {target}")
    decision = Decision(
        action=action, reason=reason, from_channel=mesh_channel if mesh_channel != "none" else cluster_channel,
        to_channel=target, from_revision=from_revision, to_revision=revision_of(target), membership=membership,
        implementation=state.implementation, run_id=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(tools.wall())),
        control_plane_state=state.control_plane_state,
    )
    tools.log(f"[{ctx.cluster}] preflight: {action}: {reason}")
    return decision
