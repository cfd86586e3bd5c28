"""Mesh management of one membership: `MANAGEMENT_AUTOMATIC` (managed Cloud Service Mesh)."""

from __future__ import annotations

import pulumi
from pulumi_gcp import gkehub

from components.fleet import FleetMembership, MeshFeature
from components.settings import Cluster


class MeshManagement(pulumi.ComponentResource):
    """The `servicemesh` FeatureMembership of one cluster.

    It depends on the `mesh`, `connectgateway` and `gkehub` APIs (without
    connectgateway provisioning stalls with REVISION_STALLED), the Feature, the
    membership and the release channel: the mesh channel is taken from the cluster's
    channel when it is provisioned. `retain_on_delete`: destroying the stack never
    turns a running mesh off. The deprecated `control_plane` field is not used.
    """

    feature_membership: gkehub.FeatureMembership

    def __init__(self, name: str, cluster: Cluster, fleet_project: str, feature: MeshFeature,
                 membership: FleetMembership, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:mesh:MeshManagement", name, None, opts)
        self.feature_membership = gkehub.FeatureMembership(
            f"{cluster.name}-mesh-management",
            project=fleet_project,
            location="global",
            feature=feature.feature.name,
            membership=membership.name,
            membership_location=cluster.membership_location,
            mesh=gkehub.FeatureMembershipMeshArgs(management="MANAGEMENT_AUTOMATIC"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, feature, membership], retain_on_delete=True),
        )
        self.register_outputs({"management": "MANAGEMENT_AUTOMATIC"})
