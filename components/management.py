"""Mesh management of one membership: `MANAGEMENT_AUTOMATIC` (managed Cloud Service Mesh)."""

from __future__ import annotations

import pulumi
from pulumi_gcp import gkehub

from components.fleet import FleetMembership, MeshFeature
from components.settings import Cluster


def _membership_input(cluster: Cluster, membership: FleetMembership) -> pulumi.Input[str]:
    """The membership name as a plain string during preview, the checked one during `up`.

    In a real preview the membership read answers unknown while the chain's
    reregister-membership step it depends on is being replaced (a channel change), and an
    unknown `membership` shows this FeatureMembership as a replace it never is. The checked
    name equals the configured one (check_membership_target returns it or fails the
    program), so `up` sees no change either way."""
    return cluster.membership if pulumi.runtime.is_dry_run() else membership.name


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
            membership=_membership_input(cluster, membership),
            membership_location=cluster.membership_location,
            mesh=gkehub.FeatureMembershipMeshArgs(management="MANAGEMENT_AUTOMATIC"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, feature, membership], retain_on_delete=True),
        )
        self.register_outputs({"management": "MANAGEMENT_AUTOMATIC"})
