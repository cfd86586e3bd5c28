"""GcpEmulator: a loopback HTTP server answering the Google API calls the real gcloud makes
for gke-mesh, and the environment that points gcloud at it.

Each API is served under its own path prefix, because the endpoint overrides give gcloud a
base URL per API (CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>, gcloud `api_endpoint_overrides`
properties) and container, gkehub and serviceusage would otherwise share `/v1/projects/...`
paths (operations, above all).

Network cut: `gcloud_argv` / the `gcloud` shim in `bin_dir` run gcloud under
testbed/engine_chain.py `network_cut_argv` (a new network namespace with only loopback up)
through relay.py, which forwards 127.0.0.1:PORT inside the namespace to this server's Unix
socket. Without namespaces, gcloud runs directly against 127.0.0.1:PORT (proxies unset).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socketserver
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from . import container, crm, gkehub, serviceusage, storage
from .hooks import InMemoryMeshHooks, MeshHooks
from .mesh import set_management
from .routing import ApiError, Request, Response, Router
from .state import Bucket, Cluster, World, cluster_link, rfc3339

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
TOKEN = "emulator-access-token"
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
PREFIXES = {"CONTAINER": "container/", "GKEHUB": "gkehub/", "SERVICEUSAGE": "serviceusage/",
            "CLOUDRESOURCEMANAGER": "cloudresourcemanager/", "STORAGE": "storage/v1/"}


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    message: str
    remaining: int
    body: re.Pattern | None = None
    """Also match the request body (e.g. one kind of cluster update among several PUTs)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcp-emulator"

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        request = Request.parse(self.command, self.path, dict(self.headers.items()), self._body())
        response = self.server.emulator.handle(request)  # type: ignore[attr-defined]
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args) -> None:  # the emulator keeps its own log
        pass

    def address_string(self) -> str:
        return "emulator-client"


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class GcpEmulator:
    def __init__(self, fleet_project: str = "my-project-123456", project_numbers: dict[str, str] | None = None,
                 mesh_hooks_factory: Callable[[Cluster], MeshHooks] | None = None, provisioning_seconds: float = 0.0,
                 clock: Callable[[], float] | None = None):
        numbers = {"my-project-123456": "123456789012"} if project_numbers is None else project_numbers
        kwargs = {"clock": clock} if clock else {}
        self.world = World(fleet_project, numbers, provisioning_seconds, mesh_hooks_factory, **kwargs)
        self.router = Router()
        for module in (container, gkehub, serviceusage, crm, storage):
            module.register(self.router, self.world)
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self._log_lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "GcpEmulator":
        self._tmp = tempfile.TemporaryDirectory(prefix="gcp-emulator-")
        root = Path(self._tmp.name)
        tcp = _TcpServer(("127.0.0.1", 0), _Handler)
        self.port = tcp.server_address[1]
        self.socket_path = str(root / "api.sock")
        unix = _UnixServer(self.socket_path, _Handler)
        for server in (tcp, unix):
            server.emulator = self  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, name=f"gcp-emulator-{type(server).__name__}", daemon=True).start()
            self._servers.append(server)
        self.token_file = root / "token"
        self.token_file.write_text(TOKEN)
        self.config_dir = root / "gcloud-config"
        (self.config_dir / "configurations").mkdir(parents=True)
        # A private gcloud configuration: no account, no project (core/project unset), no
        # usage reporting, no update checks, no metadata-server probe, no surveys.
        (self.config_dir / "active_config").write_text("default")
        (self.config_dir / "configurations" / "config_default").write_text(
            "[core]\ndisable_usage_reporting = True\ncheck_gce_metadata = False\n"
            "[component_manager]\ndisable_update_check = True\n[survey]\ndisable_prompts = True\n")
        self.bin_dir = root / "bin"
        self.bin_dir.mkdir()
        self._write_shim()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "GcpEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # ------------------------------------------------------------------ running gcloud
    def gcloud_env(self, base_env: dict[str, str] | None = None, network_cut: bool = False) -> dict[str, str]:
        """Environment for the real gcloud: every API the project uses points here, a token
        file replaces credentials, a private config dir, no prompts, no proxies. With
        `network_cut`, the `gcloud` on PATH is the shim that runs it in a namespace with
        only loopback (see module docstring)."""
        env = {k: v for k, v in (os.environ if base_env is None else base_env).items()
               if not k.startswith("CLOUDSDK_") and k not in PROXY_VARS
               and k not in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")}
        for api, prefix in PREFIXES.items():
            env[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"] = self.url + prefix
        env.update({
            "CLOUDSDK_CONFIG": str(self.config_dir),
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(self.token_file),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            "CLOUDSDK_METRICS_ENVIRONMENT": "gke-mesh-testbed",
            "NO_GCE_CHECK": "True",  # google-auth: never probe the metadata server
        })
        if network_cut:
            env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def network_cut_prefix(self) -> tuple[list[str], str]:
        """argv prefix that runs a command in a fresh namespace with loopback only, relaying
        127.0.0.1:PORT to this emulator; ([], note) when namespaces are not allowed."""
        from testbed.engine_chain import network_cut_argv

        cut, note = network_cut_argv()
        if not cut:
            return [], note
        relay = str(Path(__file__).with_name("relay.py"))
        return [*cut, sys.executable, relay, self.socket_path, str(self.port), "--"], note

    def gcloud_argv(self, argv: list[str]) -> list[str]:
        """`argv` (starting with gcloud) wrapped to run with the network cut when possible."""
        prefix, _ = self.network_cut_prefix()
        return [*prefix, self._real_gcloud(), *argv[1:]] if prefix else [self._real_gcloud(), *argv[1:]]

    def _real_gcloud(self) -> str:
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(getattr(self, "bin_dir", "")))
        found = shutil.which("gcloud", path=path)
        if not found:
            raise RuntimeError("gcloud is not on PATH")
        return found

    def _write_shim(self) -> None:
        prefix, _ = self.network_cut_prefix()
        shim = self.bin_dir / "gcloud"
        shim.write_text("#!/bin/sh\n# gcloud with the network cut (testbed/gcp_emulator)\n"
                        f"exec {shlex.join([*prefix, self._real_gcloud()])} \"$@\"\n")
        shim.chmod(0o755)

    # ------------------------------------------------------------------ handling
    def handle(self, request: Request) -> Response:
        with self._log_lock:
            self.log.append(request)
            fault = next((f for f in self.faults if f.remaining and f.method in (request.method, "*")
                          and f.pattern.search(request.path)
                          and (f.body is None or f.body.search(request.body.decode("utf-8", "replace")))), None)
            if fault:
                fault.remaining -= 1
        try:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                raise ApiError(401, "Request had invalid authentication credentials (emulator token expected).")
            if fault:
                raise ApiError(fault.status, fault.message)
            return self.router.dispatch(request)
        except ApiError as error:
            return Response.of_json(error.body(), error.code)
        except Exception as error:  # a bug of the emulator: say so, as a 500
            return Response.of_json(ApiError(500, f"emulator bug: {error.__class__.__name__}: {error}").body(), 500)

    def requests(self) -> list[tuple[str, str]]:
        with self._log_lock:
            return [(r.method, r.path) for r in self.log]

    def mutating_requests(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests() if m in MUTATING]

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()

    def fail_next(self, method: str, path_regex: str, status: int = 500, message: str = "injected fault", times: int = 1,
                  body_regex: str | None = None) -> None:
        """The next `times` requests with this method ("*": any) whose decoded path matches
        `path_regex` (re.search) answer `status` with Google's error shape."""
        with self._log_lock:
            self.faults.append(Fault(method, re.compile(path_regex), status, message, times,
                                     re.compile(body_regex) if body_regex else None))

    # ------------------------------------------------------------------ set-up
    def add_cluster(self, name: str, location: str, channel: str, *, project: str | None = None, endpoint: str = "",
                    ca_pem: bytes = b"", version: str = "1.33.5-gke.1000", autopilot: bool = False,
                    membership: str | None = None, membership_location: str | None = None, register: bool = True,
                    mesh: bool = True, mesh_hooks: MeshHooks | None = None) -> Cluster:
        """A cluster; with `register`, a fleet membership (name `membership` or the cluster's,
        in `membership_location` or the cluster's location) registered the GKE way (the
        cluster's Fleet.membership is set); with `mesh` too, management AUTOMATIC and the
        control plane already provisioned on the channel's revision (fake_world add_cluster)."""
        with self.world.lock:
            pid = project or self.world.fleet_project
            if pid not in self.world.project_numbers:
                # A project the test did not number gets a made-up one (fake_world: PROJECT_NUMBER for all).
                self.world.project_numbers[pid] = str(100000000000 + len(self.world.project_numbers))
            self.world.enabled_apis.setdefault(pid, set(self.world.enabled_apis.get(self.world.fleet_project, set())))
            cluster = Cluster(pid, location, name, channel, version, endpoint or f"127.0.0.1:{self.port}", ca_pem, autopilot,
                              hooks=None)  # type: ignore[arg-type]
            cluster.hooks = mesh_hooks or (self.world.mesh_hooks_factory(cluster) if self.world.mesh_hooks_factory else InMemoryMeshHooks())
            self.world.clusters[(pid, location, name)] = cluster
            if register:
                fleet = self.world.fleet_project
                m_loc, m_name = membership_location or location, membership or name
                member = gkehub.register_membership(self.world, fleet, m_loc, m_name, cluster_link(pid, location, name))
                cluster.fleet_membership = (f"//gkehub.googleapis.com/projects/{self.world.number_of(fleet) or fleet}"
                                            f"/locations/{m_loc}/memberships/{m_name}")
                if mesh:
                    set_management(self.world, member, "MANAGEMENT_AUTOMATIC")
                    member.provisioning_started = -1e12  # long done (fake_world: -10_000)
                    member.provisioned = True  # fake_world add_cluster installs the control plane at once
                    if cluster.hooks.installed_revision() != member.revision:
                        cluster.hooks.provision(member.revision or "")
            return cluster

    def membership(self, name: str, location: str, project: str | None = None):
        return self.world.memberships[(project or self.world.fleet_project, location, name)]

    def add_running_operation(self, cluster: Cluster, kind: str = "UPGRADE_MASTER") -> dict:
        with self.world.lock:
            return container.add_running_operation(self.world, cluster, kind)

    def set_channel_versions(self, channel: str, versions: list[str]) -> None:
        with self.world.lock:
            self.world.channel_versions[channel] = list(versions)

    def enable_api(self, project: str, api: str) -> None:
        with self.world.lock:
            self.world.enabled_apis.setdefault(project, set()).add(api)

    def disable_api(self, project: str, api: str) -> None:
        with self.world.lock:
            self.world.enabled_apis.setdefault(project, set()).discard(api)

    def create_bucket(self, name: str, ubla: bool = True, pap: str = "enforced", versioning: bool = True,
                      project: str | None = None) -> Bucket:
        with self.world.lock:
            bucket = Bucket(name, project or self.world.fleet_project, ubla, pap, versioning, rfc3339())
            self.world.buckets[name] = bucket
            return bucket

    def object_data(self, bucket: str, name: str) -> bytes | None:
        with self.world.lock:
            found = self.world.buckets[bucket].objects.get(name)
            return None if found is None else found.data
