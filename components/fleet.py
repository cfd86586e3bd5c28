"""The fleet side: the fleet-wide servicemesh Feature and each cluster's membership."""

from __future__ import annotations

import pulumi
from pulumi_gcp import gkehub

from components.settings import Cluster
from meshops.cluster.fleet_state import registers

MESH_FEATURE = "servicemesh"
FLEET_OWNED_FEATURE_FIELDS = ("labels", "spec", "fleetDefaultMemberConfig")
"""Fields of the fleet-wide Feature the program never sets, so never changes (ignore_changes)."""


def feature_id(project: str) -> str:
    return f"projects/{project}/locations/global/features/{MESH_FEATURE}"


def membership_id(project: str, location: str, membership: str) -> str:
    return f"projects/{project}/locations/{location}/memberships/{membership}"


class MeshFeature(pulumi.ComponentResource):
    """The fleet-wide `servicemesh` Feature (location `global`).

    It is shared by every cluster in the fleet, so it is adopted (imported by id) when
    it exists and never deleted: `retain_on_delete` keeps `pulumi destroy` from
    disabling the mesh fleet-wide.

    An import whose inputs differ from the live resource is imported *and then updated*
    to the program's inputs (Pulumi CLI >= 3.174; measured under the real engine, see
    testbed/ENGINE_RULES.md). The program sets only name, location and project, so
    without `ignore_changes` the first `up` would clear the Feature's labels, its
    fleet-default member config and its spec for the whole fleet. This program never
    writes those fields: they belong to whoever manages the fleet.
    """

    feature: gkehub.Feature

    def __init__(self, name: str, project: str, adopt: bool, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:fleet:MeshFeature", name, None, opts)
        self.feature = gkehub.Feature(
            MESH_FEATURE,
            name=MESH_FEATURE,
            location="global",
            project=project,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                retain_on_delete=True,
                import_=feature_id(project) if adopt else None,
                ignore_changes=list(FLEET_OWNED_FEATURE_FIELDS),
            ),
        )
        self.register_outputs({"feature": self.feature.id})


def check_membership_target(cluster: Cluster, links: list[str]) -> str:
    """Fail unless the membership registers this cluster; return the membership name.

    `links` are the GKE resource links the membership reports (empty when unknown,
    e.g. under the offline plan: then nothing can be checked here and the migration's
    preflight checks it against the live fleet).
    """
    if links and not any(registers(link, cluster.project, cluster.location, cluster.name) for link in links):
        raise pulumi.RunError(
            f"cluster {cluster.name}: fleet membership {cluster.membership} ({cluster.membership_location}) "
            f"registers {links[0].removeprefix('//container.googleapis.com/')}, not this cluster; "
            f"set membership in its gke-mesh:clusters entry to the membership of "
            f"projects/{cluster.project}/locations/{cluster.location}/clusters/{cluster.name}"
        )
    return cluster.membership


class FleetMembership(pulumi.ComponentResource):
    """A cluster's fleet membership, resolved and checked.

    GKE creates the membership itself when a cluster is registered to the fleet (the
    cluster's `fleet` block, or `gcloud container clusters update --fleet-project`), and
    the migration deletes and re-registers it; so it is read here, not owned. In adopt
    mode the live membership is read and must point at this cluster.
    """

    name: pulumi.Output[str]
    """The membership id (short name) in `membership_location`."""

    def __init__(self, name: str, cluster: Cluster, fleet_project: str, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        # The component records the same dependencies as its read, so the plan shows them.
        super().__init__("gke-mesh:fleet:Membership", name, None, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends_on)))
        if cluster.mode == "adopt":
            live = gkehub.get_membership_output(
                project=fleet_project,
                location=cluster.membership_location,
                membership_id=cluster.membership,
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=depends_on),
            )
            links = live.endpoints.apply(
                lambda endpoints: [c.resource_link for e in (endpoints or []) for c in (e.gke_clusters or []) if c.resource_link]
            )
            self.name = links.apply(lambda found: check_membership_target(cluster, found))
        else:
            self.name = pulumi.Output.from_input(cluster.membership)
        self.id_path = self.name.apply(lambda m: membership_id(fleet_project, cluster.membership_location, m))
        self.register_outputs({"name": self.name, "id": self.id_path})
