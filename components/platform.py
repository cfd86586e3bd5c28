"""MeshPlatform: wires the APIs, the fleet Feature and every cluster's mesh together."""

from __future__ import annotations

import json
import sys
from typing import Any

import pulumi

from components.channel import ReleaseChannel, live_channel
from components.fleet import FleetMembership, MeshFeature
from components.management import MeshManagement
from components.migration import MigrationChain, register
from components.services import ProjectServices
from components.settings import Cluster, Settings
from components.stack_key import stack_key_spec
from meshops.context import Options, StepContext, revision_of

MESH_APIS = ("mesh.googleapis.com", "connectgateway.googleapis.com", "gkehub.googleapis.com")
VERIFY_FIELDS = ("verified", "run_id", "control_plane_state", "data_plane_state", "revision", "implementation", "proxy_images")


def verify_outputs(stdout: str | None, channel: str, live: str | None = None, cluster: str = "") -> dict[str, Any]:
    """`clusters.<name>.last_verify`: what the verify step found when it last ran. Named for
    what it is: a Command's stdout is as old as its last run (`pulumi refresh` never
    re-runs a command), so this is the last migration's proof, not a live reading.

    `verified` holds only for `channel`, the channel this cluster is exported with: a run
    that registers the outputs without running the chain (`pulumi up --target ...`) exports
    the new channel beside the old channel's proof, which must not read as verified. Nor
    does it hold once the cluster's `live` GKE channel (read after verify, on every `up`)
    is another: someone changed it since, and says so in a warning."""
    try:
        result = json.loads(stdout or "")
    except ValueError:
        result = {}
    proven = result.get("verified", False) is True and result.get("revision") == revision_of(channel)
    if proven and live is not None and live != channel:
        pulumi.log.warn(f"cluster {cluster}: its GKE channel is {live}, not {channel} as this stack last verified (changed outside "
                        f"the stack?); last_verify.verified is false until it is migrated again: set gke-mesh:migration.rerun to a "
                        "new value and run `pulumi up` (or put the channel back by hand)")
        proven = False
    return {
        "verified": proven,
        "run_id": result.get("run_id", ""),
        "control_plane_state": result.get("control_plane_state", "UNKNOWN"),
        "data_plane_state": result.get("data_plane_state", "UNKNOWN"),
        "revision": result.get("revision", ""),
        "implementation": result.get("implementation", "UNKNOWN"),
        "proxy_images": result.get("proxy_images", {}),
    }


class ClusterMesh(pulumi.ComponentResource):
    """Everything one cluster needs; clusters share nothing but APIs and the Feature,
    so Pulumi handles them in parallel."""

    outputs: pulumi.Output[dict]
    """What the `clusters` stack output says of this cluster."""

    chain: MigrationChain | None

    def __init__(self, cluster: Cluster, settings: Settings, identity: str, stack_key, fleet_services: ProjectServices,
                 cluster_services: ProjectServices, feature: MeshFeature, wait_for: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:platform:ClusterMesh", cluster.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ctx = step_context(cluster, settings)
        container_api = cluster_services.only("container.googleapis.com")
        management_apis = fleet_services.only(*MESH_APIS)
        owned = None
        if cluster.mode == "create":
            # Imported here: pulumi_gcp.container takes ~0.2 s to load and adopted clusters never need it.
            from components.cluster import ManagedCluster

            owned = ManagedCluster(f"{cluster.name}-managed-cluster", cluster, settings.project, cluster.release_channel,
                                   container_api, opts=child)
        base = [*container_api, *fleet_services.only("gkehub.googleapis.com"), *([owned] if owned else [])]

        chain = None
        if cluster.migration.enabled:
            chain = MigrationChain(f"{cluster.name}-migration", ctx, step_options(cluster, identity),
                                   cluster.migration.reregister_membership, cluster.migration.rerun, stack_key,
                                   [*base, *wait_for], opts=child)
        self.chain = chain
        channel = ReleaseChannel(f"{cluster.name}-channel", ctx, [chain.last_before_channel] if chain else base,
                                 chain.steps if chain else None, opts=child)
        if chain:
            chain.continue_after(channel.command, management_apis)
        reregistered = [chain.steps["reregister-membership"]] if chain and "reregister-membership" in chain.steps else []
        membership = FleetMembership(f"{cluster.name}-membership", cluster, settings.project, [*base, *reregistered], opts=child)
        enabled = [chain.steps["enable-management"]] if chain else []
        management = MeshManagement(f"{cluster.name}-management", cluster, settings.project, feature, membership,
                                    [*management_apis, channel.command, *enabled], opts=child)
        if cluster.mesh_namespaces:
            from components.injection import MeshNamespaces

            ready = chain.steps["wait-ready"] if chain else management.feature_membership
            MeshNamespaces(f"{cluster.name}-mesh-namespaces", cluster, ctx, [ready],
                           created=owned.cluster if owned else None, opts=child)

        channel_now = cluster.release_channel
        if chain:
            live = live_channel(ctx, self, [chain.steps["verify"]])
            verified = pulumi.Output.all(chain.steps["verify"].stdout, live).apply(
                lambda values: verify_outputs(values[0], channel_now, values[1], cluster.name))
        else:
            verified = pulumi.Output.from_input(verify_outputs(None, channel_now))
        self.outputs = pulumi.Output.all(membership.name, verified).apply(lambda values: {
            "project": cluster.project,
            "location": cluster.location,
            "membership": values[0],
            "membership_location": cluster.membership_location,
            "release_channel": cluster.release_channel,
            "last_verify": values[1],
        })
        self.register_outputs({"outputs": self.outputs})


def step_context(cluster: Cluster, settings: Settings) -> StepContext:
    return StepContext(project=cluster.project, location=cluster.location, cluster=cluster.name,
                       fleet_project=settings.project, membership=cluster.membership,
                       membership_location=cluster.membership_location, channel=cluster.release_channel)


def stack_identity(stack: str) -> str:
    """<org>/<project>/<stack>: what names this stack in records, claims and backup folders, so a
    second project's `prod` on a shared cluster is another stack."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"


def step_options(cluster: Cluster, stack: str) -> Options:
    m = cluster.migration
    return Options(stack=stack, backup_uri=m.backup_uri, relax_security=m.relax_security,
                   remove_authorization_policies=m.remove_authorization_policies, restart_workloads=m.restart_workloads,
                   purge_crds=m.purge_crds, wait_timeout_seconds=m.wait_timeout_seconds, allow_local_backup=m.allow_local_backup,
                   accept_traffic_director=m.accept_traffic_director, reregister_membership=m.reregister_membership,
                   accept_membership_features=",".join(m.accept_membership_features) or "none")


class MeshPlatform(pulumi.ComponentResource):
    """The whole stack: APIs per project, the fleet Feature, one ClusterMesh per cluster."""

    clusters: dict[str, ClusterMesh]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:platform:MeshPlatform", name, None, opts)
        allow_dependency_depth(len(settings.clusters), settings.migration.max_parallel)
        child = pulumi.ResourceOptions(parent=self)
        services = {project: ProjectServices(f"{project}-apis", project, settings.apis, opts=child) for project in settings.projects}
        identity = stack_identity(settings.stack)
        stack_key = register("stack-key", stack_key_spec(), {}, self, []) if any(c.migration.enabled for c in settings.clusters) else None
        fleet = services[settings.project]
        feature = MeshFeature("mesh-feature", settings.project, adopt=settings.mesh_feature == "adopt",
                              depends_on=fleet.only("gkehub.googleapis.com", "mesh.googleapis.com"), opts=child)
        self.clusters = {}
        chains: list[MigrationChain] = []
        for c in settings.clusters:
            mesh = ClusterMesh(c, settings, identity, stack_key, fleet, services[c.project], feature,
                               batch_gate(chains, settings.migration.max_parallel), opts=child)
            self.clusters[c.name] = mesh
            if mesh.chain:
                chains.append(mesh.chain)
        self.register_outputs({"clusters": self.cluster_outputs()})

    def cluster_outputs(self) -> pulumi.Output[dict]:
        """The `clusters` stack output: cluster name -> what is known of it."""
        return pulumi.Output.all(**{name: mesh.outputs for name, mesh in self.clusters.items()})


STEPS_PER_CLUSTER_DEPTH = 20
"""Dependency levels one cluster's chain adds (13 steps and their components, rounded up)."""


def allow_dependency_depth(clusters: int, max_parallel: int) -> None:
    """Let the SDK walk the batch-gated chain. Each `depends_on` makes the Python SDK check
    for cycles by walking every transitive dependency, recursively
    (pulumi/runtime/resource_cycle_breaker.py `_with_transitive_deps`); one cluster at a
    time chains every cluster's steps, so 100 clusters are ~1,400 levels deep, past Python's
    default limit of 1,000 (measured: RecursionError at 100 clusters with maxParallel 1).
    The walk also makes the program's own time grow with the square of the chain (100
    clusters one at a time: ~20 s; bench/README.md)."""
    needed = 1_000 + STEPS_PER_CLUSTER_DEPTH * -(-clusters // max(max_parallel, 1))
    if needed > sys.getrecursionlimit():
        sys.setrecursionlimit(needed)


def batch_gate(earlier_chains: list[MigrationChain], max_parallel: int) -> list[pulumi.Resource]:
    """With `maxParallel` m, a cluster's migration starts after the migration m places
    before it (counting only clusters that migrate) has verified: at most m chains run at
    once, one by default. The only edge between two clusters' chains."""
    if len(earlier_chains) < max_parallel:
        return []
    return [earlier_chains[-max_parallel].steps["verify"]]
