"""A GKE cluster the program owns (`mode: create`)."""

from __future__ import annotations

import pulumi
from pulumi_gcp import container, organizations

from components.settings import Cluster


class ManagedCluster(pulumi.ComponentResource):
    """A GKE cluster ready for managed Cloud Service Mesh, and its node pool.

    Workload Identity on cluster and nodes, fleet registration in the fleet host
    project and the `mesh_id` label are what managed CSM requires. The cluster is
    `protect`ed, and so is its node pool: nothing in this program may replace or delete them. Its release channel
    is set here only at creation; later changes go through the `release-channel` step,
    which the migration orders after the purge, so `releaseChannel` is ignored here.
    """

    cluster: container.Cluster
    node_pool: container.NodePool

    def __init__(self, name: str, cluster: Cluster, fleet_project: str, channel: str,
                 depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:cluster:ManagedCluster", name, None, opts)
        fleet_number = organizations.get_project_output(project_id=fleet_project, opts=pulumi.InvokeOutputOptions(parent=self)).number
        self.cluster = container.Cluster(
            f"{cluster.name}-cluster",
            name=cluster.name,
            project=cluster.project,
            location=cluster.location,
            release_channel=container.ClusterReleaseChannelArgs(channel=channel.upper()),
            workload_identity_config=container.ClusterWorkloadIdentityConfigArgs(workload_pool=f"{cluster.project}.svc.id.goog"),
            fleet=container.ClusterFleetArgs(project=fleet_project),
            resource_labels={"mesh_id": pulumi.Output.concat("proj-", fleet_number)},
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, protect=True, ignore_changes=["releaseChannel"]),
        )
        self.node_pool = container.NodePool(
            f"{cluster.name}-node-pool",
            cluster=self.cluster.name,
            project=cluster.project,
            location=cluster.location,
            node_count=cluster.node_count,
            node_config=container.NodePoolNodeConfigArgs(
                machine_type=cluster.node_machine_type,
                workload_metadata_config=container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
            ),
            # Deleting the pool would take every workload down with it.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.register_outputs({"cluster": self.cluster.id, "node_pool": self.node_pool.id})
