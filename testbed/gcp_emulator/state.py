"""The emulated world: clusters, memberships, the servicemesh feature, enabled services,
buckets. One lock guards it; every API module reads and writes it under that lock.

Defaults follow tests/fake_world.py (FakeWorld.__init__): the fleet project has mesh,
connectgateway, gkehub and container enabled; every channel offers the clusters' version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .hooks import InMemoryMeshHooks, MeshHooks

DEFAULT_APIS = ("mesh.googleapis.com", "connectgateway.googleapis.com", "gkehub.googleapis.com", "container.googleapis.com")
CHANNELS = ("rapid", "regular", "stable")


def cluster_link(project: str, location: str, name: str) -> str:
    """GkeCluster.resourceLink form (gkehub v1 GkeCluster: "//container.googleapis.com/projects/
    my-project/locations/us-west1-a/clusters/my-cluster")."""
    return f"//container.googleapis.com/projects/{project}/locations/{location}/clusters/{name}"


@dataclass
class Cluster:
    project: str
    location: str
    name: str
    channel: str  # rapid | regular | stable | unspecified
    version: str
    endpoint: str
    ca_pem: bytes
    autopilot: bool
    hooks: MeshHooks
    fleet_membership: str | None = None  # container v1 Fleet.membership, however the cluster was registered
    pre_registered: bool = False
    """container v1 Fleet.preRegistered: "whether the cluster has been registered through the fleet
    API" (a membership created for it), rather than with `clusters update --fleet-project`."""
    workload_pool: bool = True
    node_metadata_mode: str = "GKE_METADATA"


@dataclass
class Membership:
    project: str  # fleet project id
    location: str
    name: str
    link: str  # canonical GkeCluster.resourceLink
    issuer: str
    created: str
    management: str | None = None  # MeshManagement: MANAGEMENT_AUTOMATIC | MANAGEMENT_MANUAL | None (no spec)
    provisioning_started: float | None = None
    revision: str | None = None
    provisioned: bool = False  # hooks.provision already called for this automatic period
    implementation: str = "ISTIOD"
    conditions: list[dict] = field(default_factory=list)


@dataclass
class StoredObject:
    data: bytes
    generation: int
    content_type: str
    created: str


@dataclass
class Bucket:
    name: str
    project: str
    ubla: bool
    pap: str
    versioning: bool
    created: str
    objects: dict[str, StoredObject] = field(default_factory=dict)
    """name -> the live version."""
    noncurrent: dict[str, list[StoredObject]] = field(default_factory=dict)
    """name -> versions replaced by a later write, kept while versioning is on (Cloud Storage
    docs, "Object versioning": a noncurrent version stays readable by its generation)."""

    def store(self, name: str, obj: StoredObject) -> None:
        replaced = self.objects.get(name)
        if replaced is not None and self.versioning:
            self.noncurrent.setdefault(name, []).append(replaced)
        self.objects[name] = obj

    def version(self, name: str, generation: str | None) -> StoredObject | None:
        """The live version, or the version with `generation` (live or noncurrent)."""
        live = self.objects.get(name)
        if not generation:
            return live
        return next((o for o in [*([live] if live else []), *self.noncurrent.get(name, [])] if str(o.generation) == generation), None)


@dataclass
class Upload:
    bucket: str
    name: str
    content_type: str
    data: bytearray = field(default_factory=bytearray)


def rfc3339(seconds: float | None = None) -> str:
    t = time.gmtime(time.time() if seconds is None else seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", t)


class World:
    def __init__(self, fleet_project: str, project_numbers: dict[str, str], provisioning_seconds: float,
                 mesh_hooks_factory: Callable[[Cluster], MeshHooks] | None, clock: Callable[[], float] = time.monotonic):
        self.lock = threading.RLock()
        self.fleet_project = fleet_project
        self.project_numbers = dict(project_numbers)
        self.provisioning_seconds = provisioning_seconds
        self.mesh_hooks_factory = mesh_hooks_factory
        self.clock = clock
        self.clusters: dict[tuple[str, str, str], Cluster] = {}
        self.memberships: dict[tuple[str, str, str], Membership] = {}  # (project, location, name)
        self.servicemesh_enabled: set[str] = {fleet_project}  # projects whose fleet has the servicemesh feature
        self.enabled_apis: dict[str, set[str]] = {p: set(DEFAULT_APIS) for p in {fleet_project, *project_numbers}}
        self.channel_versions: dict[str, list[str]] = {}
        self.container_operations: list[dict] = []
        self.buckets: dict[str, Bucket] = {}
        self.other_features: list[dict] = []
        """Fleet features other than servicemesh (gkehub v1 Feature messages), as a test sets them."""
        self.fleet_default_management: dict[str, str] = {}
        """fleet project -> gkehub v1 Feature.fleetDefaultMemberConfig.mesh.management, as a test sets it."""
        self.membership_bindings: dict[tuple[str, str, str], list[dict]] = {}
        """(project, location, membership) -> its scope bindings (gkehub v1 MembershipBinding), as a test sets them."""
        self.uploads: dict[str, Upload] = {}
        self.hub_operations: dict[str, dict] = {}
        self.counter = 0

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    # ------------------------------------------------------------------ projects
    def project_id(self, project: str) -> str | None:
        """A project id from an id or a number; None when unknown."""
        if project in self.project_numbers or project == self.fleet_project:
            return project
        for pid, number in self.project_numbers.items():
            if number == project:
                return pid
        return None

    def number_of(self, project: str) -> str | None:
        pid = self.project_id(project)
        return self.project_numbers.get(pid) if pid else None

    def known_project(self, project: str) -> str:
        from .routing import ApiError

        pid = self.project_id(project)
        if pid is None:
            # Google answers 403 for a project that does not exist or that the caller cannot
            # see (cloudresourcemanager v3 projects.get reference: "PERMISSION_DENIED" when
            # the project does not exist); we answer the same on every API.
            raise ApiError(403, f"The caller does not have permission (project {project})")
        return pid

    # ------------------------------------------------------------------ clusters
    def cluster_of_link(self, link: str) -> Cluster | None:
        _, _, rest = link.partition("/projects/")
        parts = rest.split("/")
        if len(parts) < 5 or parts[1] != "locations" or parts[3] != "clusters":
            return None
        pid = self.project_id(parts[0]) or parts[0]
        return self.clusters.get((pid, parts[2], parts[4]))

    def hooks_for(self, cluster: Cluster | None) -> MeshHooks:
        return cluster.hooks if cluster is not None else InMemoryMeshHooks()
