"""What Google's managed control plane and a node do inside the testbed's real API server.

    with KubeServer(controllers=True, istio="new") as kube, ManagedMesh(kube) as mesh:
        mesh.provision("asm-managed-rapid")    # CRDs, webhooks, revision, mdp-controller, CNI, RBAC
        ...                                    # pods in istio.io/rev=asm-managed-rapid namespaces get istio-proxy and run
        mesh.on_manual()                       # management MANUAL: the CRDs come back once after the next purge

The protocol another engineer's GCP API emulator calls: provision(revision), on_manual(),
installed_revision(), injected_pods(revision). The pieces, one concern each:
- control_plane.py: the objects provision() writes, with their sources;
- injector.py: the HTTPS admission webhook server the API server calls (pki.py: its CA);
- node.py: a thread that reports pods Running and Ready (or stuck on `image: auto`);
- here: the CRD reappearance after a purge (practitioners' reports, no public source
  found) and the protocol.
Everything listens on 127.0.0.1; stop() ends every thread and server and removes the temp
folder. stop() leaves the cluster's objects: webhooks with failurePolicy Fail that point at
a stopped server then refuse pod creation in injected namespaces, as a dead istiod does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from testbed.kube_server import KubeServer
from testbed.managed_mesh import control_plane
from testbed.managed_mesh.api import Api
from testbed.managed_mesh.control_plane import MESH_CRDS, channel_of
from testbed.managed_mesh.injector import SIDECAR, STATUS_ANNOTATION, Injector
from testbed.managed_mesh.node import Node
from testbed.managed_mesh.pki import make_serving_cert

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

__all__ = ["ManagedMesh"]


class ManagedMesh:
    """kube: a started KubeServer with controllers=True (Deployments need the controller manager).

    istio: which Istio CRD set provision() installs ('old', 'new' or a label); default the
    KubeServer's own `istio` setting, else 'new'. (KubeServer does not record a later
    use_istio_crds() switch, so pass it when the test switched.)
    reappear_delay: seconds between finding the purged CRDs gone and re-creating them (~30 s
    by practitioners' reports, no public source found; short in the testbed).
    interval: the node's and the reconciler's polling period.
    """

    def __init__(self, kube: KubeServer, *, istio: str | None = None, reappear_delay: float = 1.0, interval: float = 0.2):
        self.kube = kube
        self.istio = istio or kube.istio or "new"
        self.reappear_delay = reappear_delay
        self.interval = interval
        self.api: Api | None = None
        self.injector: Injector | None = None
        self.node: Node | None = None
        self.reappearances: list[float] = []
        """time.monotonic() at which each CRD re-creation began."""
        self.reconcile_errors: list[str] = []
        self._dir: Path | None = None
        self._ca = b""
        self._armed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reconciler: threading.Thread | None = None

    # ----- life cycle ------------------------------------------------------------------------
    def start(self) -> ManagedMesh:
        if self.injector:
            return self
        if not self.kube.url:
            raise RuntimeError("ManagedMesh needs a started KubeServer")
        self._dir = Path(tempfile.mkdtemp(prefix="gke-mesh-managed-"))
        try:
            cert = make_serving_cert(self._dir)
            self._ca = cert.ca_pem
            self.api = Api(self.kube)
            self.injector = Injector(cert)
            self.injector.start()
            self.node = Node(self.api, self.interval)
            self.node.start()
            self._stop.clear()
            self._reconciler = threading.Thread(target=self._reconcile_loop, name="managed-mesh-fleet", daemon=True)
            self._reconciler.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._reconciler:
            self._reconciler.join(timeout=120)  # a re-creation under way finishes first (kubectl apply)
            self._reconciler = None
        if self.node:
            self.node.stop()
            self.node = None
        if self.injector:
            self.injector.stop()
            self.injector = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ManagedMesh:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # ----- the protocol ----------------------------------------------------------------------
    def provision(self, revision: str) -> None:
        """Install the managed control plane's in-cluster objects for `revision` (idempotent:
        server-side apply; the mesh config map only when absent)."""
        channel_of(revision)  # refuses an unknown revision before writing anything
        if not self.injector or not self.api:
            raise RuntimeError("ManagedMesh.provision() before start()")
        with self._lock:
            self._install_crds()
            for obj in control_plane.objects(revision, self.injector.url, self._ca):
                self.api.apply(obj)
            self.api.create_if_absent(control_plane.mesh_config(revision))

    def on_manual(self) -> None:
        """Management switched to MANUAL: the next time the purge has deleted the Istio and
        mesh CRDs, re-create them once, reappear_delay seconds later (~30 s by
        practitioners' reports, no public source found; once: tests/fake_world.py's
        reconciles_left = 1)."""
        self._armed = True

    def installed_revision(self) -> str | None:
        """fake_world's rule: a ControlPlaneRevision exists and its istiod-<rev> webhook too."""
        assert self.api
        revisions = self.api.list(f"/apis/{control_plane.MESH_GROUP}/v1beta1/namespaces/istio-system/controlplanerevisions")
        for revision in sorted(r["metadata"]["name"] for r in revisions):
            if self.api.get(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istiod-{revision}"):
                return revision
        return None

    def injected_pods(self, revision: str) -> int:
        """Pods (any namespace, not being deleted) with an istio-proxy container injected by `revision`."""
        assert self.api
        count = 0
        for pod in self.api.list("/api/v1/pods"):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or not any(c["name"] == SIDECAR for c in pod["spec"]["containers"]):
                continue
            try:
                status = json.loads((meta.get("annotations") or {}).get(STATUS_ANNOTATION, "{}"))
            except ValueError:
                continue
            count += status.get("revision") == revision
        return count

    # ----- extras for tests ------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        return self._armed

    def injector_calls(self) -> dict[str, int]:
        return self.injector.calls() if self.injector else {}

    @property
    def errors(self) -> list[str]:
        """The node's and the reconciler's recent failures (both keep running after one)."""
        return [*(self.node.errors if self.node else []), *self.reconcile_errors]

    def wait_idle(self, timeout: float = 120) -> None:
        """Return once no provision or CRD re-creation is under way. Tests call it before
        deleting what a re-creation is writing: `kubectl delete --wait` of a CRD that is
        re-created meanwhile waits until its timeout (measured; see the report)."""
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"a CRD re-creation still under way after {timeout}s")
        self._lock.release()

    # ----- the fleet's CRD reconciliation ----------------------------------------------------
    def _crd_names(self) -> set[str]:
        served = self.kube.istio_served(self.istio)
        return {f"{k['plural']}.{k['group']}" for k in served.values()} | set(MESH_CRDS)

    def _install_crds(self) -> None:
        assert self.api
        for crd in control_plane.mesh_crds():
            self.api.apply(crd)
        self.kube.apply_istio_crds(self.istio)  # kubectl apply --server-side, then waits for Established
        for name in MESH_CRDS:
            self._wait_established(name)

    def _wait_established(self, name: str, timeout: float = 60) -> None:
        assert self.api
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crd = self.api.get(f"{CRD_PATH}/{name}") or {}
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in crd.get("status", {}).get("conditions") or []):
                # ... and its storage serves (until then: 429 "storage is (re)initializing"),
                # as KubeServer.apply_istio_crds waits for the Istio ones.
                plural, group = name.split(".", 1)
                if self.api.call("GET", f"/apis/{group}/v1beta1/{plural}?limit=1", retries=0)[0] == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"CRD {name} not Established after {timeout}s")

    def _all_gone(self) -> bool:
        assert self.api
        present = {c["metadata"]["name"] for c in self.api.list(CRD_PATH)}
        return not (present & self._crd_names())

    def _reconcile_loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._armed:
                continue
            try:
                if not self._all_gone():
                    continue
                if self._stop.wait(self.reappear_delay):
                    return
                with self._lock:
                    self._armed = False  # once, even if the re-creation fails half-way
                    self.reappearances.append(time.monotonic())  # before the first CRD is visible
                    self._install_crds()
            except Exception as error:  # keep the thread alive; tests read errors / reappearances
                self.reconcile_errors = [*self.reconcile_errors[-9:], f"reconcile: {error}"]
