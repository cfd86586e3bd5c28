"""The stand-in `pulumi-resource-gcp` (testbed/gcp_provider): its rules called directly,
its plugin launch, and the project's fleet components under the REAL Pulumi engine.

- Unit tests (no engine): Check defaults, Diff and replace rules, Struct secrets and
  unknowns, REST calls against FakeGcp (a tiny HTTP fake of the REST endpoints, below).
- Launcher: the script install_launcher writes starts a plugin that prints its port and
  answers GetPluginInfo with the installed pulumi_gcp version.
- Engine (e2e): this module is also a script (`python -m tests.test_gcp_provider --out F
  --scratch D`) run in a network namespace with only loopback up (engine_chain's
  network_cut_argv); there FakeGcp serves the REST API and an Automation API inline
  program declares the project's own ProjectServices (one projects.Service), MeshFeature
  (the servicemesh Feature with import_), FleetMembership (the getMembership invoke) and
  MeshManagement (one FeatureMembership). Ops: up, up again (no change), preview+up with
  another mesh.management (update), preview+up with another membership (replace),
  destroy (retain_on_delete: no delete reaches the API).

Run: venv/bin/python -m pytest tests/test_gcp_provider.py -q   (e2e needs bash testbed/build_pulumi.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi.runtime.proto import provider_pb2  # noqa: E402

from testbed.gcp_provider import install_launcher  # noqa: E402
from testbed.gcp_provider.resources.base import Config  # noqa: E402
from testbed.gcp_provider.rest import Rest  # noqa: E402
from testbed.gcp_provider.server import GcpProvider, plugin_version  # noqa: E402
from testbed.gcp_provider.values import SECRET_SIG, SIG, UNKNOWN, from_struct, to_struct  # noqa: E402

PROJECT, NUMBER, LOCATION, CLUSTER = "fleet-proj", "123456789", "us-central1", "c1"
SERVICE_T = "gcp:projects/service:Service"
FEATURE_T = "gcp:gkehub/feature:Feature"
FM_T = "gcp:gkehub/featureMembership:FeatureMembership"


# =============================================================================== the fake API
class FakeGcp:
    """Google's REST paths the provider uses, in memory, on 127.0.0.1. Every request is
    recorded as (method, path, query, body). Mutations answer a not-yet-done Operation
    first, so the provider must poll `v1/<operation>`. A PATCH of membershipSpecs upserts
    each key (normalising the project id to its number, as the API answers keys) and
    drops a key whose spec is empty."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.services: dict[str, str] = {}
        self.features: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, dict[str, Any]] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.projects = {PROJECT: NUMBER}
        self.operations: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                query = dict(urllib.parse.parse_qsl(url.query))
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": url.path, "query": query, "body": body})
                    status, answer = fake.handle(self.command, url.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ seed
    def add_feature(self, project: str = PROJECT, name: str = "servicemesh", **fields: Any) -> None:
        path = f"projects/{project}/locations/global/features/{name}"
        self.features[path] = {"name": path, "resourceState": {"state": "ACTIVE"}, "createTime": "2026-01-01T00:00:00Z", **fields}

    def add_membership(self, membership: str, cluster: str = CLUSTER, location: str = LOCATION, project: str = PROJECT) -> None:
        path = f"projects/{project}/locations/{location}/memberships/{membership}"
        link = f"//container.googleapis.com/projects/{project}/locations/{location}/clusters/{cluster}"
        self.memberships[path] = {"name": path, "endpoint": {"gkeCluster": {"resourceLink": link}},
                                  "authority": {"issuer": f"https://container.googleapis.com/v1/{link[len('//container.googleapis.com/'):]}"},
                                  "state": {"code": "READY"}}

    def specs(self, project: str = PROJECT, name: str = "servicemesh") -> dict[str, Any]:
        return self.features[f"projects/{project}/locations/global/features/{name}"].get("membershipSpecs", {})

    def mutations(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] != "GET"]

    # ------------------------------------------------------------------ routing
    def _operation(self, response: dict[str, Any] | None = None) -> dict[str, Any]:
        name = f"operations/op-{len(self.operations) + 1}"
        self.operations[name] = {"name": name, "done": True, "response": response or {}}
        return {"name": name, "done": False}

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": status, "message": message}}

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if parts[0] != "v1":
            return self._error(404, f"no such API path {path}")
        rest = "/".join(parts[1:])
        if rest.startswith("operations/"):
            return (200, self.operations[rest]) if rest in self.operations else self._error(404, "no operation")
        if method == "GET" and len(parts) == 3 and parts[1] == "projects":
            number = self.projects.get(parts[2])
            if number is None:
                return self._error(404, "no project")
            return 200, {"projectId": parts[2], "projectNumber": number, "name": parts[2], "lifecycleState": "ACTIVE"}
        if "/services/" in rest:
            head, _, service = rest.partition("/services/")
            project = head.split("/")[1]
            service, _, verb = service.partition(":")
            key = f"{project}/{service}"
            if method == "GET":
                return 200, {"name": f"projects/{NUMBER}/services/{service}", "state": self.services.get(key, "DISABLED")}
            if method == "POST" and verb in ("enable", "disable"):
                self.services[key] = "ENABLED" if verb == "enable" else "DISABLED"
                return 200, self._operation()
        if "/memberships/" in rest and method == "GET":
            found = self.memberships.get(rest)
            return (200, found) if found else self._error(404, f"membership {rest} not found")
        if "/clusters/" in rest and method == "GET":
            found = self.clusters.get(rest)
            return (200, found) if found else self._error(404, f"cluster {rest} not found")
        if rest.endswith("/features") and method == "POST":
            name = f"{rest}/{query['featureId']}"
            if name in self.features:
                return self._error(409, "already exists")
            self.features[name] = {"name": name, **(body or {}), "resourceState": {"state": "ACTIVE"}}
            return 200, self._operation(self.features[name])
        if "/features/" in rest:
            feature = self.features.get(rest)
            if feature is None:
                return self._error(404, f"feature {rest} not found")
            if method == "GET":
                return 200, feature
            if method == "DELETE":
                del self.features[rest]
                return 200, self._operation()
            if method == "PATCH":
                for field in query.get("updateMask", "").split(","):
                    if field == "membershipSpecs":
                        specs = feature.setdefault("membershipSpecs", {})
                        for key, spec in (body or {}).get("membershipSpecs", {}).items():
                            owner = key.split("/")[1]
                            key = key.replace(f"projects/{owner}/", f"projects/{self.projects.get(owner, owner)}/", 1)
                            if spec:
                                specs[key] = spec
                            else:
                                specs.pop(key, None)
                    elif field:
                        feature[field] = (body or {}).get(field)
                return 200, self._operation(feature)
        return self._error(404, f"no route for {method} {path}")


@pytest.fixture
def fake():
    server = FakeGcp()
    yield server
    server.close()


# =============================================================================== direct calls
class Context:
    """The slice of grpc.ServicerContext the servicer uses."""

    def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")


def provider(fake: FakeGcp | None = None, project: str = PROJECT) -> GcpProvider:
    p = GcpProvider(rest_factory=lambda api: Rest(fake.url if fake else "http://127.0.0.1:9/", poll_seconds=0.01))
    p.Configure(provider_pb2.ConfigureRequest(args=to_struct({"project": project})), Context())
    return p


def urn(token: str, name: str = "r") -> str:
    return f"urn:pulumi:dev::proj::{token}::{name}"


def diff(token: str, olds: dict, news: dict) -> provider_pb2.DiffResponse:
    request = provider_pb2.DiffRequest(id="x", urn=urn(token), olds=to_struct(olds), news=to_struct(news), old_inputs=to_struct(olds))
    return provider().Diff(request, Context())


FM_INPUTS = {"project": PROJECT, "location": "global", "feature": "servicemesh", "membership": "c1",
             "membershipLocation": LOCATION, "mesh": {"management": "MANAGEMENT_AUTOMATIC"}}


def test_configure_answers_secrets_resources_and_preview() -> None:
    answer = GcpProvider().Configure(provider_pb2.ConfigureRequest(variables={"gcp:config:project": "p"}), Context())
    assert (answer.acceptSecrets, answer.acceptResources, answer.supportsPreview) == (True, True, True)


def test_check_takes_project_from_config_and_applies_disable_on_destroy_default() -> None:
    checked = provider().Check(provider_pb2.CheckRequest(urn=urn(SERVICE_T), news=to_struct({"service": "mesh.googleapis.com"})), Context())
    assert from_struct(checked.inputs) == {"project": PROJECT, "service": "mesh.googleapis.com", "disableOnDestroy": True}
    given = provider().Check(provider_pb2.CheckRequest(urn=urn(FM_T), news=to_struct({**FM_INPUTS, "project": "other"})), Context())
    assert from_struct(given.inputs)["project"] == "other"


def test_check_reports_a_missing_required_input() -> None:
    answer = provider().Check(provider_pb2.CheckRequest(urn=urn(FM_T), news=to_struct({"location": "global"})), Context())
    assert {f.property for f in answer.failures} == {"feature", "membership"}


def test_diff_none_for_equal_inputs_and_empty_values_alike() -> None:
    answer = diff(FEATURE_T, {"name": "servicemesh", "location": "global", "project": PROJECT},
                  {"name": "servicemesh", "location": "global", "project": PROJECT, "labels": {}})
    assert answer.changes == provider_pb2.DiffResponse.DIFF_NONE and not answer.replaces


def test_diff_mesh_management_is_an_update() -> None:
    answer = diff(FM_T, FM_INPUTS, {**FM_INPUTS, "mesh": {"management": "MANAGEMENT_MANUAL"}})
    assert answer.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(answer.diffs) == ["mesh"] and not answer.replaces and not answer.deleteBeforeReplace
    assert answer.detailedDiff["mesh"].kind == provider_pb2.PropertyDiff.UPDATE


@pytest.mark.parametrize("token,olds,field,new", [
    (FM_T, FM_INPUTS, "membership", "c1-renamed"),
    (FM_T, FM_INPUTS, "membershipLocation", "global"),
    (FM_T, FM_INPUTS, "feature", "other"),
    (FM_T, FM_INPUTS, "location", "us-east1"),
    (FM_T, FM_INPUTS, "project", "p2"),
    (FEATURE_T, {"name": "servicemesh", "location": "global", "project": PROJECT}, "name", "other"),
    (FEATURE_T, {"name": "servicemesh", "location": "global", "project": PROJECT}, "project", "p2"),
    (SERVICE_T, {"project": PROJECT, "service": "mesh.googleapis.com"}, "service", "gkehub.googleapis.com"),
    (SERVICE_T, {"project": PROJECT, "service": "mesh.googleapis.com"}, "project", "p2"),
])
def test_diff_replaces_on_identity_fields(token: str, olds: dict, field: str, new: str) -> None:
    answer = diff(token, olds, {**olds, field: new})
    assert list(answer.replaces) == [field] and not answer.deleteBeforeReplace
    assert answer.detailedDiff[field].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE


def test_diff_service_flags_update_in_place() -> None:
    olds = {"project": PROJECT, "service": "mesh.googleapis.com", "disableOnDestroy": True}
    answer = diff(SERVICE_T, olds, {**olds, "disableOnDestroy": False})
    assert list(answer.diffs) == ["disableOnDestroy"] and not answer.replaces


def test_diff_unknown_membership_is_a_replace_and_secret_equal_is_no_change() -> None:
    assert list(diff(FM_T, FM_INPUTS, {**FM_INPUTS, "membership": UNKNOWN}).replaces) == ["membership"]
    secret = {SIG: SECRET_SIG, "value": "c1"}
    assert diff(FM_T, FM_INPUTS, {**FM_INPUTS, "membership": secret}).changes == provider_pb2.DiffResponse.DIFF_NONE


def test_preview_create_passes_unknowns_and_makes_no_call(fake: FakeGcp) -> None:
    inputs = {"name": "servicemesh", "location": "global", "project": UNKNOWN}
    answer = provider(fake).Create(provider_pb2.CreateRequest(urn=urn(FEATURE_T), properties=to_struct(inputs), preview=True), Context())
    outputs = from_struct(answer.properties)
    assert answer.id == "" and outputs["project"] == UNKNOWN and outputs["createTime"] == UNKNOWN
    assert fake.requests == []


def test_create_keeps_a_secret_input_secret_in_outputs_and_sends_it_plain(fake: FakeGcp) -> None:
    fake.add_feature()
    secret = {SIG: SECRET_SIG, "value": "MANAGEMENT_AUTOMATIC"}
    inputs = {**FM_INPUTS, "mesh": {"management": secret}}
    answer = provider(fake).Create(provider_pb2.CreateRequest(urn=urn(FM_T), properties=to_struct(inputs)), Context())
    assert from_struct(answer.properties)["mesh"]["management"] == secret
    assert fake.specs() == {f"projects/{NUMBER}/locations/{LOCATION}/memberships/c1": {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}}


def test_service_create_enables_polls_the_operation_and_ids_project_slash_service(fake: FakeGcp) -> None:
    inputs = {"project": PROJECT, "service": "mesh.googleapis.com", "disableOnDestroy": False}
    answer = provider(fake).Create(provider_pb2.CreateRequest(urn=urn(SERVICE_T), properties=to_struct(inputs)), Context())
    assert answer.id == f"{PROJECT}/mesh.googleapis.com"
    assert [(r["method"], r["path"]) for r in fake.requests] == [
        ("POST", f"/v1/projects/{PROJECT}/services/mesh.googleapis.com:enable"), ("GET", "/v1/operations/op-1")]
    provider(fake).Delete(provider_pb2.DeleteRequest(id=answer.id, urn=urn(SERVICE_T), properties=answer.properties), Context())
    assert len(fake.mutations()) == 1  # disableOnDestroy false: no :disable


def test_feature_read_by_import_id_gives_inputs_matching_a_bare_declaration(fake: FakeGcp) -> None:
    fake.add_feature(membershipSpecs={f"projects/{NUMBER}/locations/{LOCATION}/memberships/c1": {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}})
    feature_id = f"projects/{PROJECT}/locations/global/features/servicemesh"
    answer = provider(fake).Read(provider_pb2.ReadRequest(id=feature_id, urn=urn(FEATURE_T)), Context())
    assert answer.id == feature_id
    assert from_struct(answer.inputs) == {"name": "servicemesh", "location": "global", "project": PROJECT}
    assert from_struct(answer.properties)["resourceStates"] == [{"state": "ACTIVE", "hasResources": False}]


def test_feature_membership_id_format_update_and_delete(fake: FakeGcp) -> None:
    fake.add_feature(membershipSpecs={f"projects/{NUMBER}/locations/{LOCATION}/memberships/other": {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}})
    p = provider(fake)
    created = p.Create(provider_pb2.CreateRequest(urn=urn(FM_T), properties=to_struct(FM_INPUTS)), Context())
    assert created.id == f"projects/{PROJECT}/locations/global/features/servicemesh/membershipId/c1"
    patch = fake.mutations()[-1]
    assert patch["method"] == "PATCH" and patch["query"] == {"updateMask": "membershipSpecs"}
    manual = {**FM_INPUTS, "mesh": {"management": "MANAGEMENT_MANUAL"}}
    p.Update(provider_pb2.UpdateRequest(id=created.id, urn=urn(FM_T), olds=created.properties, news=to_struct(manual),
                                        old_inputs=to_struct(FM_INPUTS)), Context())
    key = f"projects/{NUMBER}/locations/{LOCATION}/memberships/c1"
    assert fake.specs()[key] == {"mesh": {"management": "MANAGEMENT_MANUAL"}}
    read = p.Read(provider_pb2.ReadRequest(id=created.id, urn=urn(FM_T), properties=to_struct(manual)), Context())
    assert from_struct(read.inputs)["mesh"] == {"management": "MANAGEMENT_MANUAL"}
    p.Delete(provider_pb2.DeleteRequest(id=created.id, urn=urn(FM_T), properties=to_struct(manual)), Context())
    assert list(fake.specs()) == [f"projects/{NUMBER}/locations/{LOCATION}/memberships/other"]
    gone = p.Read(provider_pb2.ReadRequest(id=created.id, urn=urn(FM_T), properties=to_struct(manual)), Context())
    assert gone.id == ""


def test_get_membership_answers_the_sdk_result_shape(fake: FakeGcp) -> None:
    from pulumi_gcp.gkehub.get_membership import GetMembershipResult

    fake.add_membership("c1")
    args = {"project": PROJECT, "location": LOCATION, "membershipId": "c1"}
    answer = provider(fake).Invoke(provider_pb2.InvokeRequest(tok="gcp:gkehub/getMembership:getMembership", args=to_struct(args)), Context())
    result = from_struct(getattr(answer, "return"))
    assert result["endpoints"] == [{"gkeClusters": [{"resourceLink": f"//container.googleapis.com/projects/{PROJECT}/locations/{LOCATION}/clusters/c1"}]}]
    expected = {"authorities", "deletionPolicy", "effectiveLabels", "endpoints", "id", "labels", "location", "membershipId", "name", "project", "pulumiLabels"}
    assert set(result) == expected
    assert GetMembershipResult(**{k: v for k, v in result.items() if k in ("id", "location", "name", "project")}).id == result["id"]


def test_get_membership_not_found_is_an_error(fake: FakeGcp) -> None:
    args = {"project": PROJECT, "location": LOCATION, "membershipId": "nope"}
    with pytest.raises(RuntimeError, match="membership not found"):
        provider(fake).Invoke(provider_pb2.InvokeRequest(tok="gcp:gkehub/getMembership:getMembership", args=to_struct(args)), Context())


def test_launcher_prints_a_port_and_answers_plugin_info(tmp_path: Path) -> None:
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import provider_pb2_grpc

    folder = install_launcher(tmp_path)
    started = time.monotonic()
    process = subprocess.Popen([str(folder / "pulumi-resource-gcp"), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline().strip())
        startup = time.monotonic() - started
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = provider_pb2_grpc.ResourceProviderStub(channel).GetPluginInfo(empty_pb2.Empty(), timeout=10)
        assert info.version == plugin_version() == "10.2.0"
        assert startup < 10
    finally:
        process.terminate()
        process.wait(timeout=10)


# =============================================================================== real engine
MEMBERSHIP_LINK = f"//container.googleapis.com/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}"


def program_for(version: dict[str, Any]):
    """The project's fleet components for one adopted cluster, as components/platform.py
    wires them (one API only). `management` is swapped into MeshManagement's
    FeatureMembershipMeshArgs (it always says MANAGEMENT_AUTOMATIC) for the update case."""

    def program() -> None:
        import components.management as management_module
        from components.fleet import FleetMembership, MeshFeature
        from components.management import MeshManagement
        from components.services import ProjectServices
        from components.settings import Cluster

        cluster = Cluster(name=CLUSTER, location=LOCATION, project=PROJECT, membership=version["membership"],
                          membership_location=LOCATION)
        services = ProjectServices(f"{PROJECT}-apis", PROJECT, ("gkehub.googleapis.com",))
        gkehub_api = services.only("gkehub.googleapis.com")
        feature = MeshFeature("mesh-feature", PROJECT, adopt=True, depends_on=gkehub_api)
        membership = FleetMembership(f"{CLUSTER}-membership", cluster, PROJECT, gkehub_api)
        real = management_module.gkehub

        class Hub:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            @staticmethod
            def FeatureMembershipMeshArgs(management: str, **rest: Any) -> Any:  # noqa: N802
                return real.FeatureMembershipMeshArgs(management=version["management"], **rest)

        management_module.gkehub = Hub()
        try:
            MeshManagement(f"{CLUSTER}-management", cluster, PROJECT, feature, membership, gkehub_api)
        finally:
            management_module.gkehub = real
        import pulumi

        pulumi.export("membership", membership.name)

    return program


AUTOMATIC = {"membership": CLUSTER, "management": "MANAGEMENT_AUTOMATIC"}
MANUAL = {"membership": CLUSTER, "management": "MANAGEMENT_MANUAL"}
RENAMED = {"membership": f"{CLUSTER}-renamed", "management": "MANAGEMENT_MANUAL"}
SEQUENCE = [("first up", "up", AUTOMATIC), ("second up", "up", AUTOMATIC),
            ("preview management change", "preview", MANUAL), ("up management change", "up", MANUAL),
            ("preview membership change", "preview", RENAMED), ("up membership change", "up", RENAMED),
            ("destroy", "destroy", RENAMED)]
# Against testbed/gcp_emulator: one membership per cluster there, so no membership change.
EMULATOR_SEQUENCE = [step for step in SEQUENCE if "membership change" not in step[0]]
EMULATOR_SEQUENCE[-1] = ("destroy", "destroy", MANUAL)


def engine_main(argv: list[str] | None = None) -> int:
    """Inside the network namespace: FakeGcp (or the testbed emulator), then SEQUENCE."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scratch", required=True, type=Path)
    parser.add_argument("--api", choices=("fake", "emulator"), default="fake")
    args = parser.parse_args(argv)
    from testbed.gcp_provider import engine

    api = FakeApi() if args.api == "fake" else EmulatorApi()
    try:
        started = time.monotonic()
        stack = engine.open_stack(program_for(AUTOMATIC), args.scratch, api.url, {"gcp:project": PROJECT},
                                  api_urls=api.api_urls, token=api.token)
        setup = round(time.monotonic() - started, 2)
        results = []
        for label, op, version in (SEQUENCE if args.api == "fake" else EMULATOR_SEQUENCE):
            offset = len(api.requests())
            result = engine.run(stack, op, program_for(version))
            result.update(label=label, requests=json.loads(json.dumps(api.requests()[offset:])), specs=api.specs())
            results.append(result)
        calls = [json.loads(line) for line in (args.scratch / "provider-calls.jsonl").read_text().splitlines()]
        version_line = subprocess.run([str(engine.engine_chain.pulumi_bin() / "pulumi"), "version"], capture_output=True, text=True).stdout.strip()
        args.out.write_text(json.dumps({"pulumi_version": version_line, "setup_seconds": setup, "results": results,
                                        "provider_calls": calls, "deployment": stack.export_stack().deployment}, indent=1))
    except Exception:
        args.out.write_text(json.dumps({"crash": traceback.format_exc()}))
        return 1
    finally:
        api.close()
    return 0


class FakeApi:
    """FakeGcp seeded for SEQUENCE: the servicemesh Feature to import, the gkehub API off,
    two memberships registering the cluster (its own name and a renamed one)."""

    api_urls: dict[str, str] = {}
    token = None

    def __init__(self) -> None:
        self.fake = FakeGcp()
        self.fake.add_feature()
        self.fake.add_membership(CLUSTER)
        self.fake.add_membership(f"{CLUSTER}-renamed")
        self.url = self.fake.url

    def requests(self) -> list[dict[str, Any]]:
        return list(self.fake.requests)

    def specs(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.fake.specs()))

    def close(self) -> None:
        self.fake.close()


class EmulatorApi:
    """testbed/gcp_emulator's GcpEmulator (each API under its own prefix, Bearer token),
    with the cluster registered (membership = cluster name) and no mesh management yet."""

    def __init__(self) -> None:
        from testbed.gcp_emulator import server as emulator_server
        from testbed.gcp_emulator import GcpEmulator

        self.emulator = GcpEmulator(fleet_project=PROJECT, project_numbers={PROJECT: NUMBER}).start()
        self.emulator.add_cluster(CLUSTER, LOCATION, "regular", mesh=False)
        self.emulator.disable_api(PROJECT, "gkehub.googleapis.com")
        self.url = self.emulator.url
        self.api_urls = {api.lower(): self.url + prefix for api, prefix in emulator_server.PREFIXES.items()}
        self.token = emulator_server.TOKEN

    def requests(self) -> list[dict[str, Any]]:
        return [{"method": m, "path": p} for m, p in self.emulator.requests()]

    def specs(self) -> dict[str, Any]:
        with self.emulator.world.lock:
            from testbed.gcp_emulator.mesh import feature

            return feature(self.emulator.world, PROJECT)["membershipSpecs"]

    def close(self) -> None:
        self.emulator.stop()


def _resources(deployment: dict[str, Any], token: str) -> list[dict[str, Any]]:
    return [r for r in deployment.get("resources", []) if r.get("type") == token]


def run_engine(api: str, capsys) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """engine_main in a network namespace with only loopback up; (result, runs by label)."""
    from testbed import engine_chain
    from testbed.gcp_provider import engine

    missing = engine.missing_binaries()
    if missing:
        pytest.skip("real-engine testbed not built: " + "; ".join(missing))
    prefix, network = engine_chain.network_cut_argv()
    with tempfile.TemporaryDirectory(prefix="gke-mesh-gcp-provider-") as folder:
        scratch, out = Path(folder) / "engine", Path(folder) / "result.json"
        env = {k: v for k, v in os.environ.items() if k not in engine_chain.PROXY_VARS}
        env["PYTHONPATH"] = str(ROOT)
        started = time.monotonic()
        done = subprocess.run([*prefix, sys.executable, "-m", "tests.test_gcp_provider", "--out", str(out), "--scratch", str(scratch),
                               "--api", api], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        total = round(time.monotonic() - started, 1)
        result = json.loads(out.read_text()) if out.exists() else {}
    if done.returncode != 0 or "crash" in result:
        pytest.fail(f"engine run failed (exit {done.returncode}, {network}):\n{result.get('crash', '')}\nstderr:\n{done.stderr[-4000:]}")
    with capsys.disabled():
        print(f"\n[gcp provider under the real engine, {api} API] {result['pulumi_version']}, {network}, {total}s in all "
              f"(setup {result['setup_seconds']}s)")
        for r in result["results"]:
            print(f"  {r['label']:28} ok={r['ok']} {r['seconds']:6.2f}s changes={r['changes']} summary={r['summary']} "
                  f"steps={[s[1:] for s in r['steps']]}")
    failed = [f"{r['label']}: {r['error']}" for r in result["results"] if not r["ok"]]
    assert not failed, "\n\n".join(failed)
    return result, {r["label"]: r for r in result["results"]}


@pytest.mark.e2e
def test_fleet_components_under_the_real_engine(capsys) -> None:
    result, runs = run_engine("fake", capsys)
    key = f"projects/{NUMBER}/locations/{LOCATION}/memberships/{CLUSTER}"

    first = runs["first up"]
    assert sorted(s[1:] for s in first["steps"] if s[0].startswith("gcp:")) == [
        [f"{CLUSTER}-mesh-management", "create"], [f"{PROJECT}-gkehub", "create"], ["servicemesh", "import"]]
    assert [r["path"] for r in first["requests"] if r["method"] == "POST"] == [f"/v1/projects/{PROJECT}/services/gkehub.googleapis.com:enable"]
    assert first["specs"] == {key: {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}}

    second = runs["second up"]
    assert second["changes"] == 0 and second["steps"] == [] and second["summary"].get("same", 0) >= 7, second
    assert [r for r in second["requests"] if r["method"] != "GET"] == []

    for label in ("preview management change", "up management change"):
        assert [s[1:] for s in runs[label]["steps"]] == [[f"{CLUSTER}-mesh-management", "update"]], runs[label]
    assert runs["preview management change"]["requests"] == [r for r in runs["preview management change"]["requests"] if r["method"] == "GET"]
    assert runs["up management change"]["specs"] == {key: {"mesh": {"management": "MANAGEMENT_MANUAL"}}}

    assert ["c1-mesh-management", "replace"] in [s[1:] for s in runs["preview membership change"]["steps"]]
    replaced = runs["up membership change"]
    assert {s[2] for s in replaced["steps"] if s[1] == f"{CLUSTER}-mesh-management"} >= {"create-replacement", "replace"}
    # retain_on_delete: the replaced membership's entry stays (the engine never calls Delete)
    assert set(replaced["specs"]) == {key, f"projects/{NUMBER}/locations/{LOCATION}/memberships/{CLUSTER}-renamed"}

    destroyed = runs["destroy"]
    assert destroyed["ok"] and [r for r in destroyed["requests"] if r["method"] != "GET"] == []
    assert not [c for c in result["provider_calls"] if c["method"] == "Delete"]
    assert _resources(result["deployment"], FM_T) == [] and _resources(result["deployment"], FEATURE_T) == []


@pytest.mark.e2e
def test_fleet_components_under_the_real_engine_against_the_emulator(capsys) -> None:
    try:
        from testbed.gcp_emulator import GcpEmulator  # noqa: F401
    except ImportError as error:
        pytest.skip(f"testbed/gcp_emulator not importable: {error}")
    result, runs = run_engine("emulator", capsys)
    key = f"projects/{NUMBER}/locations/{LOCATION}/memberships/{CLUSTER}"
    assert {s[2] for s in runs["first up"]["steps"] if s[0].startswith("gcp:")} == {"create", "import"}
    assert runs["first up"]["specs"] == {key: {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}}
    assert runs["second up"]["changes"] == 0 and runs["second up"]["steps"] == []
    assert [s[1:] for s in runs["up management change"]["steps"]] == [[f"{CLUSTER}-mesh-management", "update"]]
    assert runs["up management change"]["specs"] == {key: {"mesh": {"management": "MANAGEMENT_MANUAL"}}}
    assert [r for r in runs["destroy"]["requests"] if r["method"] != "GET"] == []
    assert not [c for c in result["provider_calls"] if c["method"] == "Delete"]


if __name__ == "__main__":
    sys.exit(engine_main())
