"""gkehub (fleet): memberships list/get/create/delete, the servicemesh feature get/patch,
operations get. Served under /gkehub/ for the versions gcloud 528 uses (v1 for every
command the project runs; v1beta/v1alpha accepted by the same handlers, one state).

Shapes: gcloud generated client gkehub_v1_messages.py: Membership {name, endpoint:
MembershipEndpoint{gkeCluster: GkeCluster{resourceLink}}, authority: Authority{issuer,
workloadIdentityPool, identityProvider}, state: MembershipState{code}}, ListMembershipsResponse,
Feature {membershipSpecs, membershipStates}, Operation {name, done, response}.

Calls gcloud 528 makes (seen with a logging server):
  memberships list      GET    /v1/projects/P/locations/-/memberships
  memberships delete    DELETE /v1/projects/P/locations/L/memberships/M  (then polls the operation)
  memberships register  POST   /v1/projects/P/locations/L/memberships?membershipId=M
                        body {authority:{issuer}, endpoint:{gkeCluster:{resourceLink}}}, built from --gke-uri
                        with the *container endpoint override* as host: normalised here to container.googleapis.com
  mesh describe         GET    /v1/projects/P/locations/global/features/servicemesh?returnPartialSuccess=True
  mesh update           GET    /v1/projects/P/locations/L/memberships/M, then the feature patch (see README)
"""

from __future__ import annotations

import hashlib

from .mesh import feature, membership_key, membership_state, set_management
from .routing import ApiError, Request, Router, not_found
from .state import Membership, World, rfc3339

V = r"/gkehub/(?P<version>v1|v1beta|v1alpha|v2|v2beta|v2alpha)"
P = V + r"/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"


def membership_json(world: World, m: Membership, link_host: str | None = None) -> dict:
    """`link_host`: the resource link as gcloud builds it under the emulator's container
    endpoint override (see get_membership)."""
    cluster = world.cluster_of_link(m.link)
    link = m.link if link_host is None else m.link.replace("//container.googleapis.com/", f"//{link_host}/container/", 1)
    return {"name": f"projects/{m.project}/locations/{m.location}/memberships/{m.name}",
            "endpoint": {"gkeCluster": {"resourceLink": link, **({} if cluster else {"clusterMissing": True})}},
            "authority": {"issuer": m.issuer, "workloadIdentityPool": f"{m.project}.svc.id.goog",
                          "identityProvider": f"https://gkehub.googleapis.com/projects/{m.project}/locations/{m.location}/memberships/{m.name}"},
            "state": {"code": "READY"}, "createTime": m.created, "updateTime": m.created,
            "uniqueId": hashlib.sha256(f"{m.project}/{m.location}/{m.name}/{m.created}".encode()).hexdigest()[:32]}


def operation(world: World, project: str, location: str, response: dict | None, type_name: str) -> dict:
    """A long-running Operation, already done (the emulator does everything at once)."""
    op = {"name": f"projects/{project}/locations/{location}/operations/operation-{world.next_id()}", "done": True,
          "metadata": {"@type": "type.googleapis.com/google.cloud.gkehub.v1.OperationMetadata", "createTime": rfc3339(),
                       "endTime": rfc3339(), "verb": "update", "apiVersion": "v1"}}
    op["response"] = {"@type": f"type.googleapis.com/{type_name}", **(response or {})}
    world.hub_operations[op["name"]] = op
    return op


def canonical_link(link: str) -> str:
    """GkeCluster.resourceLink with Google's host whatever host gcloud put there
    (gcloud builds it from the container endpoint, which the emulator overrides)."""
    _, _, rest = link.partition("/projects/")
    return "//container.googleapis.com/projects/" + rest if rest else link


def _member(world: World, project: str, location: str, name: str) -> Membership:
    pid = world.known_project(project)
    m = world.memberships.get((pid, location, name))
    if m is None:
        raise not_found(f"Resource 'projects/{project}/locations/{location}/memberships/{name}' was not found")
    return m


def register_membership(world: World, project: str, location: str, name: str, link: str, issuer: str = "") -> Membership:
    """Create a membership (caller holds the lock). Memberships are per location and their
    name may differ from the cluster's (gcloud reference, `container fleet memberships`;
    fake_world). An existing name fails ALREADY_EXISTS (fake_world)."""
    if (project, location, name) in world.memberships:
        raise ApiError(409, f"Membership 'projects/{project}/locations/{location}/memberships/{name}' already exists")
    link = canonical_link(link)
    cluster = world.cluster_of_link(link)
    if cluster is None:
        # Our reading: the fleet checks the GKE cluster exists (wording ours; Google does not document it).
        raise ApiError(400, f"GKE cluster {link} was not found", "INVALID_ARGUMENT")
    # Authority.issuer of a GKE cluster is its container v1 URL (gkehub v1 Authority: "https://
    # container.googleapis.com/v1/projects/my-project/locations/us-west1/clusters/my-cluster");
    # gcloud builds it from the (overridden) container endpoint, so the host is put back.
    _, _, path = (issuer or link).partition("/projects/")
    m = Membership(project, location, name, link, f"https://container.googleapis.com/v1/projects/{path}", rfc3339())
    world.memberships[(project, location, name)] = m
    default = world.fleet_default_management.get(project)
    if default:  # a joining membership gets the fleet's default member config (gkehub v1 Feature.fleetDefaultMemberConfig)
        set_management(world, m, default)
    return m


def register(router: Router, world: World) -> None:
    def list_memberships(req: Request, version: str, project: str, location: str):
        with world.lock:
            pid = world.known_project(project)
            return {"resources": [membership_json(world, m) for (p, loc, _), m in sorted(world.memberships.items())
                                  if p == pid and location in ("-", loc)]}

    def get_membership(req: Request, version: str, project: str, location: str, name: str):
        # gcloud 528's `memberships unregister --gke-uri` compares this link with one it builds
        # from the effective container endpoint (command_lib/container/fleet/memberships/
        # gke_util.py, ConstructGKEClusterResourceLinkAndURI). Google answers //container.googleapis.com/...,
        # which is what gcloud builds without an override; under the emulator's override gcloud
        # builds //127.0.0.1:PORT/container/..., so to gcloud's register and unregister (which
        # compare it; their user agent names the command: core/transport.py, MakeUserAgentString)
        # one membership answers its link in that form. Every other reader (lists, the gcp
        # provider's getMembership) gets Google's form.
        agent = req.headers.get("user-agent", "")
        compares_link = any(f"command/gcloud.container.fleet.memberships.{verb}" in agent for verb in ("register", "unregister"))
        with world.lock:
            return membership_json(world, _member(world, project, location, name),
                                   req.headers.get("host", "127.0.0.1") if compares_link else None)

    def create_membership(req: Request, version: str, project: str, location: str):
        body = req.json()
        name = req.query.get("membershipId", "")
        link = str(((body.get("endpoint") or {}).get("gkeCluster") or {}).get("resourceLink", ""))
        with world.lock:
            pid = world.known_project(project)
            m = register_membership(world, pid, location, name, link, str((body.get("authority") or {}).get("issuer", "")))
            cluster = world.cluster_of_link(link)
            if cluster is not None:  # our reading: the cluster's fleet block names a membership made through the fleet API
                cluster.fleet_membership = f"//gkehub.googleapis.com/projects/{world.number_of(pid) or pid}/locations/{location}/memberships/{name}"
                cluster.pre_registered = True
            return operation(world, pid, location, membership_json(world, m), "google.cloud.gkehub.v1.Membership")

    def delete_membership(req: Request, version: str, project: str, location: str, name: str):
        with world.lock:
            m = _member(world, project, location, name)
            if world.membership_bindings.get((m.project, m.location, m.name)):
                # gkehub v1 DeleteMembershipRequest.force: "If set to true, any subresource from this
                # Membership will also be deleted. Otherwise, the request will only work if the
                # Membership has no subresource." gcloud 528 never sets it.
                raise ApiError(400, f"Membership 'projects/{project}/locations/{location}/memberships/{name}' has "
                                    "subresources; set force to delete them", "FAILED_PRECONDITION")
            del world.memberships[(m.project, m.location, m.name)]
            cluster = world.cluster_of_link(m.link)
            if cluster is not None and cluster.fleet_membership and cluster.fleet_membership.endswith(f"/locations/{location}/memberships/{name}"):
                cluster.fleet_membership = None  # our reading: the cluster's fleet link goes with it
            return operation(world, m.project, location, None, "google.protobuf.Empty")

    def list_bindings(req: Request, version: str, project: str, location: str, name: str):
        with world.lock:
            m = _member(world, project, location, name)
            found = world.membership_bindings.get((m.project, m.location, m.name), [])
            return {"membershipBindings": found} if found else {}

    def get_feature(req: Request, version: str, project: str, location: str, feature_name: str):
        with world.lock:
            pid = world.known_project(project)
            if feature_name != "servicemesh" or pid not in world.servicemesh_enabled or location != "global":
                raise not_found(f"Resource 'projects/{project}/locations/{location}/features/{feature_name}' was not found")
            return feature(world, pid)

    def list_features(req: Request, version: str, project: str, location: str):
        """GkeHub v1 ListFeatures (`gcloud container fleet features list`): the servicemesh
        Feature when enabled, then `world.other_features` (Feature messages a test adds)."""
        with world.lock:
            pid = world.known_project(project)
            found = [feature(world, pid)] if pid in world.servicemesh_enabled and location == "global" else []
            return {"resources": [*found, *world.other_features]}

    def patch_feature(req: Request, version: str, project: str, location: str, feature_name: str):
        body = req.json()
        mask = set(filter(None, req.query.get("updateMask", "").split(",")))
        with world.lock:
            pid = world.known_project(project)
            if feature_name != "servicemesh" or location != "global":
                raise ApiError(400, f"The emulator patches only the servicemesh feature, not {feature_name}", "UNIMPLEMENTED")
            if pid not in world.servicemesh_enabled:
                raise not_found(f"Resource 'projects/{project}/locations/global/features/servicemesh' was not found")
            if mask - {"membership_specs", "membershipSpecs"}:
                raise ApiError(400, f"The emulator patches only membership_specs, not {sorted(mask)}", "UNIMPLEMENTED")
            for key, spec in (body.get("membershipSpecs") or {}).items():
                member = _member_of_key(world, pid, key)
                management = str(((spec or {}).get("mesh") or {}).get("management", ""))
                set_management(world, member, management)
            return operation(world, pid, "global", feature(world, pid), "google.cloud.gkehub.v1.Feature")

    def get_operation(req: Request, version: str, project: str, location: str, op: str):
        with world.lock:
            found = world.hub_operations.get(f"projects/{project}/locations/{location}/operations/{op}")
            if found is None:
                raise not_found(f"Operation {op} was not found")
            return found

    # gkehub v2 MembershipFeature (gkehub_v2_messages.py: MembershipFeature {name, spec: FeatureSpec
    # {servicemesh: ServiceMeshSpec{management}}, state: FeatureState{servicemesh: ServiceMeshState,
    # state}, lifecycleState}): what `gcloud container fleet mesh update` (528) reads and patches:
    #   GET   /v2/projects/P/locations/L/memberships/M/features/servicemesh
    #   PATCH /v2/projects/P/locations/L/memberships/M/features/servicemesh?updateMask=spec&allowMissing=True
    #         body {spec: {servicemesh: {management: MANAGEMENT_AUTOMATIC|MANAGEMENT_MANUAL}}}
    #   then GET /v2/projects/P/locations/L/operations/OP until done.
    # Same state as the v1 Feature's membershipSpecs/membershipStates.
    def membership_feature_json(m: Membership) -> dict:
        state = membership_state(world, m)
        return {"name": f"projects/{m.project}/locations/{m.location}/memberships/{m.name}/features/servicemesh",
                "spec": {"servicemesh": {"management": m.management}},
                "state": {"servicemesh": state["servicemesh"], "state": state["state"]},
                "lifecycleState": {"state": "ENABLED"}, "createTime": m.created, "updateTime": rfc3339()}

    def get_membership_feature(req: Request, version: str, project: str, location: str, name: str, feature_name: str):
        with world.lock:
            m = _member(world, project, location, name)
            if feature_name != "servicemesh" or m.management is None or m.project not in world.servicemesh_enabled:
                raise not_found(f"Resource 'projects/{project}/locations/{location}/memberships/{name}/features/{feature_name}' was not found")
            return membership_feature_json(m)

    def patch_membership_feature(req: Request, version: str, project: str, location: str, name: str, feature_name: str):
        body = req.json()
        with world.lock:
            m = _member(world, project, location, name)
            if feature_name != "servicemesh" or req.query.get("updateMask") not in ("spec", "spec.servicemesh"):
                raise ApiError(400, f"The emulator patches only spec of servicemesh, not {feature_name} {req.query.get('updateMask')}",
                               "UNIMPLEMENTED")
            if m.project not in world.servicemesh_enabled:
                # Our reading (Google does not say): the fleet-wide feature must exist first.
                raise ApiError(400, f"Feature servicemesh is not enabled in fleet project {m.project}", "FAILED_PRECONDITION")
            management = str((((body.get("spec") or {}).get("servicemesh")) or {}).get("management", ""))
            set_management(world, m, management)
            return operation(world, m.project, location, membership_feature_json(m), "google.cloud.gkehub.v2.MembershipFeature")

    router.add("GET", P + r"/memberships/(?P<name>[^/]+)/features/(?P<feature_name>[^/]+)", get_membership_feature)
    router.add("PATCH", P + r"/memberships/(?P<name>[^/]+)/features/(?P<feature_name>[^/]+)", patch_membership_feature)
    router.add("GET", P + r"/memberships", list_memberships)
    router.add("POST", P + r"/memberships", create_membership)
    router.add("GET", P + r"/memberships/(?P<name>[^/]+)", get_membership)
    router.add("DELETE", P + r"/memberships/(?P<name>[^/]+)", delete_membership)
    router.add("GET", P + r"/memberships/(?P<name>[^/]+)/bindings", list_bindings)
    router.add("GET", P + r"/features", list_features)
    router.add("GET", P + r"/features/(?P<feature_name>[^/]+)", get_feature)
    router.add("PATCH", P + r"/features/(?P<feature_name>[^/]+)", patch_feature)
    router.add("GET", P + r"/operations/(?P<op>[^/]+)", get_operation)


def _member_of_key(world: World, project: str, key: str) -> Membership:
    """A membershipSpecs key: projects/{id or number}/locations/L/memberships/M."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "memberships":
        raise ApiError(400, f"Invalid membership key {key!r}", "INVALID_ARGUMENT")
    if (world.project_id(parts[1]) or parts[1]) != project:
        raise ApiError(400, f"Membership {key} is not in fleet project {project}", "INVALID_ARGUMENT")
    return _member(world, project, parts[3], parts[5])


__all__ = ["register", "register_membership", "membership_json", "membership_key"]
