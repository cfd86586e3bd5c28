"""MeshPlatform: wires the APIs, the fleet Feature and every cluster's mesh together."""

from __future__ import annotations

import pulumi

from components.channel import ReleaseChannel
from components.cluster import ManagedCluster
from components.fleet import FleetMembership, MeshFeature
from components.management import MeshManagement
from components.services import ProjectServices
from components.settings import Cluster, Settings
from meshops.context import StepContext

MESH_APIS = ("mesh.googleapis.com", "connectgateway.googleapis.com", "gkehub.googleapis.com")


class ClusterMesh(pulumi.ComponentResource):
    """Everything one cluster needs; clusters share nothing but APIs and the Feature,
    so Pulumi handles them in parallel."""

    outputs: pulumi.Output[dict]
    """What the `clusters` stack output says of this cluster."""

    def __init__(self, cluster: Cluster, settings: Settings, fleet_services: ProjectServices,
                 cluster_services: ProjectServices, feature: MeshFeature,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:platform:ClusterMesh", cluster.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ctx = step_context(cluster, settings)
        owned: list[pulumi.Resource] = []
        if cluster.mode == "create":
            owned = [ManagedCluster(f"{cluster.name}-managed-cluster", cluster, settings.project, settings.release_channel,
                                    cluster_services.only("container.googleapis.com"), opts=child)]
        channel = ReleaseChannel(f"{cluster.name}-channel", ctx, [*cluster_services.only("container.googleapis.com"), *owned], opts=child)
        membership = FleetMembership(f"{cluster.name}-membership", cluster, settings.project,
                                     [*fleet_services.only("gkehub.googleapis.com"), *owned], opts=child)
        MeshManagement(f"{cluster.name}-management", cluster, settings.project, feature, membership,
                       [*fleet_services.only(*MESH_APIS), channel.command], opts=child)
        self.outputs = membership.name.apply(lambda name: {
            "project": cluster.project,
            "location": cluster.location,
            "membership": name,
            "membership_location": cluster.membership_location,
            "release_channel": settings.release_channel,
        })
        self.register_outputs({"outputs": self.outputs})


def step_context(cluster: Cluster, settings: Settings) -> StepContext:
    return StepContext(project=cluster.project, location=cluster.location, cluster=cluster.name,
                       fleet_project=settings.project, membership=cluster.membership,
                       membership_location=cluster.membership_location, channel=settings.release_channel)


class MeshPlatform(pulumi.ComponentResource):
    """The whole stack: APIs per project, the fleet Feature, one ClusterMesh per cluster."""

    clusters: dict[str, ClusterMesh]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:platform:MeshPlatform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        services = {project: ProjectServices(f"{project}-apis", project, settings.apis, opts=child) for project in settings.projects}
        fleet = services[settings.project]
        feature = MeshFeature("mesh-feature", settings.project, adopt=settings.mesh_feature == "adopt",
                              depends_on=fleet.only("gkehub.googleapis.com", "mesh.googleapis.com"), opts=child)
        self.clusters = {
            c.name: ClusterMesh(c, settings, fleet, services[c.project], feature, opts=child)
            for c in settings.clusters
        }
        self.register_outputs({"clusters": self.cluster_outputs()})

    def cluster_outputs(self) -> pulumi.Output[dict]:
        """The `clusters` stack output: cluster name -> what is known of it."""
        return pulumi.Output.all(**{name: mesh.outputs for name, mesh in self.clusters.items()})
