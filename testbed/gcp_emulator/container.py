"""container v1 (GKE): clusters get/list/update, serverConfig, operations.

Shapes are the messages of gcloud's generated client
(generated_clients/apis/container/v1/container_v1_messages.py): Cluster, MasterAuth,
ReleaseChannel (channel: RAPID | REGULAR | STABLE | ...), WorkloadIdentityConfig,
Autopilot, NodePool / NodeConfig / WorkloadMetadataConfig (mode GKE_METADATA), Fleet,
UpdateClusterRequest / ClusterUpdate.desiredReleaseChannel, Operation (status DONE),
ListOperationsResponse, ServerConfig / ReleaseChannelConfig (channel, defaultVersion,
validVersions), ListClustersResponse.

Calls gcloud 528 makes (seen with a logging server):
  (served under /container/: the endpoint override is http://127.0.0.1:PORT/container/)
  clusters describe  GET  /v1/projects/P/locations/L/clusters/C   (on 404 also GET .../locations/-/clusters)
  clusters update    GET  cluster, PUT /v1/projects/P/locations/L/clusters/C {update: {desiredReleaseChannel}},
                     then polls GET /v1/projects/P/locations/L/operations/OP until DONE
  get-server-config  GET  /v1/projects/P/locations/L/serverConfig
  operations list    GET  /v1/projects/P/locations/L/operations (the --filter is applied by gcloud)
"""

from __future__ import annotations

import base64

from .routing import ApiError, Request, Router, not_found
from .state import CHANNELS, Cluster, World, rfc3339

P = r"/container/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"


def cluster_json(world: World, c: Cluster) -> dict:
    # Field set as tests/fake_world.py's `container clusters describe` answer, plus the
    # name/location/selfLink/status every real Cluster carries.
    body = {
        "name": c.name, "location": c.location, "status": "RUNNING",
        "selfLink": f"https://container.googleapis.com/v1/projects/{c.project}/locations/{c.location}/clusters/{c.name}",
        "endpoint": c.endpoint,
        "masterAuth": {"clusterCaCertificate": base64.b64encode(c.ca_pem).decode()},
        # ReleaseChannel is empty when the cluster is on no channel (fake_world: "unspecified").
        "releaseChannel": {"channel": c.channel.upper()} if c.channel != "unspecified" else {},
        "currentMasterVersion": c.version, "currentNodeVersion": c.version, "initialClusterVersion": c.version,
        "autopilot": {"enabled": c.autopilot},
        "nodePools": [{"name": "default-pool", "version": c.version, "status": "RUNNING",
                       "config": {"workloadMetadataConfig": {"mode": c.node_metadata_mode}}}],
    }
    if c.workload_pool:
        body["workloadIdentityConfig"] = {"workloadPool": f"{c.project}.svc.id.goog"}
    if c.fleet_membership:
        # container v1 Fleet: project, membership ("//gkehub.googleapis.com/projects/NUM/
        # locations/LOC/memberships/NAME"), preRegistered.
        body["fleet"] = {"project": world.number_of(world.fleet_project) or world.fleet_project,
                         "membership": c.fleet_membership, "preRegistered": c.pre_registered}
    return body


def _cluster(world: World, project: str, location: str, name: str) -> Cluster:
    pid = world.known_project(project)
    c = world.clusters.get((pid, location, name))
    if c is None:
        raise not_found(f"Not found: projects/{project}/locations/{location}/clusters/{name}.")
    return c


def _update_fleet(world: World, c: Cluster, project: str) -> dict:
    """`clusters update --fleet-project=P` sends desiredFleet {project: P}: GKE registers the
    cluster to that fleet under a membership named after the cluster, in the cluster's
    region; `--clear-fleet-project` sends {project: ""} and GKE unregisters it (gcloud 528's
    requests, seen with the emulator's log; the June 2025 Zenn write-up
    'GKE Service Mesh のリリースチャンネル変更と再インストール手順' re-registered this way;
    the membership's name and location are our reading of GKE's fleet docs)."""
    from .gkehub import register_membership  # gkehub imports nothing of container: no cycle at import time

    if not project:
        if c.fleet_membership:
            _, _, rest = c.fleet_membership.partition("/projects/")
            parts = rest.split("/")  # NUMBER/locations/L/memberships/M
            key = (world.known_project(parts[0]) if parts[0] else "", parts[2], parts[4])
            world.memberships.pop(key, None)
            c.fleet_membership = None
        return _operation(world, c, "UPDATE_CLUSTER")
    if c.fleet_membership:
        raise ApiError(400, f"Cluster is already registered to a fleet: {c.fleet_membership}", "FAILED_PRECONDITION")
    fleet = world.known_project(project)
    region = c.location if c.location.count("-") == 1 else c.location.rsplit("-", 1)[0]
    register_membership(world, fleet, region, c.name, f"//container.googleapis.com/projects/{c.project}/locations/{c.location}/clusters/{c.name}")
    c.fleet_membership = f"//gkehub.googleapis.com/projects/{world.number_of(fleet) or fleet}/locations/{region}/memberships/{c.name}"
    c.pre_registered = False
    return _operation(world, c, "UPDATE_CLUSTER")


def _operation(world: World, c: Cluster, kind: str, status: str = "DONE") -> dict:
    op_id = f"operation-{world.next_id()}"
    base = f"https://container.googleapis.com/v1/projects/{c.project}/locations/{c.location}"
    op = {"name": op_id, "zone": c.location, "location": c.location, "operationType": kind, "status": status,
          "selfLink": f"{base}/operations/{op_id}", "targetLink": f"{base}/clusters/{c.name}",
          "startTime": rfc3339(), "project": c.project}
    if status == "DONE":
        op["endTime"] = op["startTime"]
    world.container_operations.append(op)
    return op


def channel_versions(world: World) -> dict[str, list[str]]:
    """Each channel's valid versions: set by the test, else every channel offers every
    cluster's version (fake_world: "a version in all three by default")."""
    everyone = sorted({c.version for c in world.clusters.values()}) or ["1.33.5-gke.1000"]
    return {ch: list(world.channel_versions.get(ch, everyone)) for ch in CHANNELS}


def register(router: Router, world: World) -> None:
    def get(req: Request, project: str, location: str, cluster: str):
        with world.lock:
            return cluster_json(world, _cluster(world, project, location, cluster))

    def list_clusters(req: Request, project: str, location: str):
        with world.lock:
            pid = world.known_project(project)
            return {"clusters": [cluster_json(world, c) for (p, loc, _), c in sorted(world.clusters.items())
                                 if p == pid and location in ("-", loc)]}

    def update(req: Request, project: str, location: str, cluster: str):
        body = req.json()
        update = body.get("update") or {}
        with world.lock:
            c = _cluster(world, project, location, cluster)
            if set(update) == {"desiredFleet"}:
                return _update_fleet(world, c, str((update["desiredFleet"] or {}).get("project", "")))
            if set(update) != {"desiredReleaseChannel"}:
                raise ApiError(400, f"The emulator only updates the release channel and the fleet, not {sorted(update)}", "UNIMPLEMENTED")
            target = str((update["desiredReleaseChannel"] or {}).get("channel", "UNSPECIFIED")).lower()
            running = [o for o in world.container_operations if o["status"] == "RUNNING"
                       and o["targetLink"].endswith(f"/clusters/{c.name}") and f"/locations/{c.location}/" in o["targetLink"]]
            if running:
                # GKE refuses updates while another operation runs (public issue reports quote
                # "incompatible operation"). Message wording: ours.
                raise ApiError(400, f"Cluster is running incompatible operation {running[0]['name']}.", "FAILED_PRECONDITION")
            if target in CHANNELS and c.version not in channel_versions(world)[target]:
                # GKE refuses a channel that does not offer the cluster's version (get-server-config;
                # public issue reports: 'Master version must be one of "STABLE" channel supported versions').
                raise ApiError(400, f'Master version must be one of "{target.upper()}" channel supported versions.',
                               "FAILED_PRECONDITION")
            c.channel = target if target in CHANNELS else "unspecified"
            return _operation(world, c, "UPDATE_CLUSTER")

    def server_config(req: Request, project: str, location: str):
        with world.lock:
            world.known_project(project)
            versions = channel_versions(world)
            every = sorted({v for vs in versions.values() for v in vs}, reverse=True)
            return {"defaultClusterVersion": versions["regular"][0], "validMasterVersions": every, "validNodeVersions": every,
                    "channels": [{"channel": ch.upper(), "defaultVersion": vs[0], "validVersions": vs}
                                 for ch, vs in sorted(versions.items())]}

    def list_operations(req: Request, project: str, location: str):
        with world.lock:
            pid = world.known_project(project)
            return {"operations": [o for o in world.container_operations if o["project"] == pid
                                   and location in ("-", o["location"])]}

    def get_operation(req: Request, project: str, location: str, op: str):
        with world.lock:
            for o in world.container_operations:
                if o["name"] == op:
                    return o
        raise not_found(f"Not found: operation {op}.")

    router.add("GET", P + r"/clusters/(?P<cluster>[^/]+)", get)
    router.add("PUT", P + r"/clusters/(?P<cluster>[^/]+)", update)
    router.add("GET", P + r"/clusters", list_clusters)
    router.add("GET", P + r"/serverConfig", server_config)
    router.add("GET", P + r"/operations", list_operations)
    router.add("GET", P + r"/operations/(?P<op>[^/]+)", get_operation)


def add_running_operation(world: World, c: Cluster, kind: str = "UPGRADE_MASTER") -> dict:
    """A test's running operation on a cluster (blocks updates until finished)."""
    return _operation(world, c, kind, status="RUNNING")
