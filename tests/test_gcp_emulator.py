"""The REAL gcloud against testbed/gcp_emulator: every argv meshops/cluster/gcloud.py builds, then
meshops' own gcloud-using code (fleet_reader, preflight's membership checks, preconditions,
backup_store on gs://, the release-channel step) through the real meshops.cluster.process runner.

gcloud runs with the emulator's environment (endpoint overrides, a token file, a private
config) and, where `unshare -n` works, in a fresh network namespace with only loopback up
(testbed/engine_chain.py `network_cut_argv`; relay.py forwards 127.0.0.1:PORT there to the
emulator). Every call's stderr is checked for signs of a request to a real googleapis.com
host (or the metadata server): one is a failure.

Run: `venv/bin/python -m pytest tests/test_gcp_emulator.py -m e2e -q`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from meshops.cluster import gcloud, preconditions, process
from meshops.cluster.backup_store import Backup, BackupStore, check_bucket
from meshops.cluster.fleet_reader import FleetReader, MemoryCache
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.cluster.runs import runs_in
from meshops.context import StepContext, StepInput
from meshops.steps import release_channel
from meshops.steps.preflight import project_number, resolve_membership
from meshops.steps.wait_ready import _enabled_apis
from testbed.engine_chain import network_cut_argv
from testbed.gcp_emulator import GcpEmulator, InMemoryMeshHooks

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("gcloud") is None, reason="the real gcloud is not on PATH")]

FLEET = "my-project-123456"
NUMBER = "123456789012"
LOCATION = "asia-northeast1"
CTX = StepContext(project=FLEET, location=LOCATION, cluster="dev-cluster-1", fleet_project=FLEET,
                  membership="dev-m", membership_location=LOCATION, channel="regular")
KEY = f"projects/{NUMBER}/locations/{LOCATION}/memberships/dev-m"
REAL_HOST = re.compile(r"https?://[a-z0-9.-]*googleapis\.com|host='[^']*googleapis\.com'|metadata\.google\.internal"
                       r"|Name or service not known|Temporary failure in name resolution|Network is unreachable")


def assert_offline(stderr: str) -> None:
    """A real request attempt shows up as a googleapis.com URL or a resolver/network error."""
    found = REAL_HOST.search(stderr)
    assert found is None, f"gcloud tried to reach a real Google host ({found.group(0)!r}):\n{stderr}"


class Gcloud:
    """Runs meshops' argv with the real gcloud under the emulator's environment."""

    def __init__(self, emu: GcpEmulator):
        self.emu = emu
        self.env = emu.gcloud_env()

    def __call__(self, argv: list[str], input: str | None = None) -> subprocess.CompletedProcess:
        assert argv[0] == "gcloud"
        done = subprocess.run(self.emu.gcloud_argv(argv), env=self.env, input=input, capture_output=True, text=True,
                              timeout=120, stdin=None if input is not None else subprocess.DEVNULL)
        assert_offline(done.stderr)
        return done

    def json(self, argv: list[str]) -> Any:
        done = self(argv)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def ok(self, argv: list[str], input: str | None = None) -> str:
        done = self(argv, input)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def hooks() -> InMemoryMeshHooks:
    return InMemoryMeshHooks()


@pytest.fixture
def emu(hooks):
    with GcpEmulator(fleet_project=FLEET, project_numbers={FLEET: NUMBER}) as emulator:
        emulator.add_cluster("dev-cluster-1", LOCATION, "rapid", membership="dev-m", ca_pem=b"-----BEGIN CERTIFICATE-----\n",
                             mesh_hooks=hooks)
        emulator.create_bucket("gke-mesh-backups")
        yield emulator


@pytest.fixture
def g(emu) -> Gcloud:
    return Gcloud(emu)


def test_network_is_cut_where_possible(emu):
    prefix, note = network_cut_argv()
    if not prefix:
        pytest.skip(note)
    assert emu.gcloud_argv(["gcloud", "version"])[:2] == prefix[:2]


def test_a_real_host_attempt_is_caught(emu):
    """The guard itself: gcloud with one override missing tries container.googleapis.com, and
    (network cut or not) its stderr trips assert_offline."""
    env = emu.gcloud_env()
    del env["CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER"]
    if not network_cut_argv()[0]:
        pytest.skip("without a network namespace this would really contact Google")
    done = subprocess.run(emu.gcloud_argv(gcloud.describe_cluster(CTX)), env=env, capture_output=True, text=True, timeout=120)
    with pytest.raises(AssertionError, match="tried to reach a real Google host"):
        assert_offline(done.stderr)


# ------------------------------------------------------------------------ container
def test_describe_cluster(g, emu):
    described = g.json(gcloud.describe_cluster(CTX))
    assert described["name"] == "dev-cluster-1"
    assert described["releaseChannel"] == {"channel": "RAPID"}
    assert described["masterAuth"]["clusterCaCertificate"] == "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
    assert described["workloadIdentityConfig"]["workloadPool"] == f"{FLEET}.svc.id.goog"
    assert described["autopilot"] == {"enabled": False}
    assert described["nodePools"][0]["config"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    assert described["fleet"]["membership"] == f"//gkehub.googleapis.com/projects/{NUMBER}/locations/{LOCATION}/memberships/dev-m"
    assert emu.mutating_requests() == []


def test_missing_cluster_is_googles_not_found(g):
    done = g(gcloud.describe_cluster(StepContext(**{**CTX.__dict__, "cluster": "nope"})))
    assert done.returncode == 1
    assert "Not found: projects/my-project-123456/locations/asia-northeast1/clusters/nope" in done.stderr


def test_server_config_and_running_operations(g, emu):
    emu.set_channel_versions("stable", ["1.31.1-gke.1"])
    config = g.json(gcloud.server_config(CTX))
    channels = {c["channel"]: c["validVersions"] for c in config["channels"]}
    assert channels["STABLE"] == ["1.31.1-gke.1"] and channels["REGULAR"] == ["1.33.5-gke.1000"]
    described = g.json(gcloud.describe_cluster(CTX))
    assert preconditions.channel_refusal(described, config, "regular") is None
    assert "not one of the stable channel's versions" in preconditions.channel_refusal(described, config, "stable")

    assert g.json(gcloud.running_operations(CTX)) == []
    emu.add_running_operation(emu.world.clusters[(FLEET, LOCATION, "dev-cluster-1")])
    running = g.json(gcloud.running_operations(CTX))
    assert [o["operationType"] for o in running] == ["UPGRADE_MASTER"]
    assert "1 operation(s) running" in preconditions.operation_refusal(running, "dev-cluster-1")
    refused = g(gcloud.update_release_channel(CTX))
    assert refused.returncode == 1 and "incompatible operation" in refused.stderr


def test_update_release_channel(g, emu):
    emu.clear_log()
    g.ok(gcloud.update_release_channel(CTX))
    assert ("PUT", f"/container/v1/projects/{FLEET}/locations/{LOCATION}/clusters/dev-cluster-1") in emu.requests()
    assert g.json(gcloud.describe_cluster(CTX))["releaseChannel"] == {"channel": "REGULAR"}


def test_channel_without_the_clusters_version_is_refused(g, emu):
    emu.set_channel_versions("regular", ["1.34.0-gke.1"])
    done = g(gcloud.update_release_channel(CTX))
    assert done.returncode == 1 and 'Master version must be one of "REGULAR" channel supported versions' in done.stderr
    assert g.json(gcloud.describe_cluster(CTX))["releaseChannel"] == {"channel": "RAPID"}


# ------------------------------------------------------------------------ projects, services
def test_describe_project(g):
    assert g.json(gcloud.describe_project(FLEET))["projectNumber"] == NUMBER
    unknown = g(gcloud.describe_project("someone-elses"))
    assert unknown.returncode == 1


def test_enabled_services(g, emu):
    names = {s["config"]["name"] for s in g.json(gcloud.list_enabled_services(FLEET))}
    assert {"mesh.googleapis.com", "connectgateway.googleapis.com", "gkehub.googleapis.com", "container.googleapis.com"} <= names
    emu.disable_api(FLEET, "connectgateway.googleapis.com")
    assert "connectgateway.googleapis.com" not in {s["config"]["name"] for s in g.json(gcloud.list_enabled_services(FLEET))}


def test_fleet_features_list_feeds_the_bound_features_rule(g, emu):
    from meshops.cluster.preconditions import features_bound_to

    emu.world.other_features = [{"name": f"projects/{FLEET}/locations/global/features/configmanagement",
                                 "membershipSpecs": {f"projects/{NUMBER}/locations/asia-northeast1/memberships/dev-cluster-1": {}}}]
    try:
        listed = g.json(gcloud.list_features(FLEET))
    finally:
        emu.world.other_features = []
    assert features_bound_to(listed, "dev-cluster-1", "asia-northeast1", (FLEET, NUMBER)) == (["configmanagement"], [])


def test_a_gke_registered_cluster_leaves_and_joins_the_fleet_with_cluster_updates(g, emu):
    """The re-registration of the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順'
    (`clusters update --clear-fleet-project`, then `--fleet-project`), as gcloud 528 sends it (desiredFleet), against the emulator."""
    from meshops.context import StepContext

    ctx = StepContext(project=FLEET, location="asia-northeast1", cluster="gke-registered", fleet_project=FLEET,
                      membership="gke-registered", membership_location="asia-northeast1", channel="regular")
    emu.add_cluster("gke-registered", "asia-northeast1", "rapid")
    assert g.json(gcloud.describe_cluster(ctx))["fleet"]["membership"].endswith("/locations/asia-northeast1/memberships/gke-registered")
    assert g(gcloud.leave_fleet(ctx)).returncode == 0
    assert "fleet" not in g.json(gcloud.describe_cluster(ctx)) or not g.json(gcloud.describe_cluster(ctx))["fleet"].get("membership")
    assert not any(m["name"].endswith("/memberships/gke-registered") for m in g.json(gcloud.list_memberships(ctx)))
    assert g(gcloud.join_fleet(ctx)).returncode == 0
    assert any(m["name"].endswith("/locations/asia-northeast1/memberships/gke-registered") for m in g.json(gcloud.list_memberships(ctx)))


# ------------------------------------------------------------------------ fleet
def test_memberships_list_delete_register(g, emu):
    listed = g.json(gcloud.list_memberships(CTX))
    assert [m["name"] for m in listed] == [f"projects/{FLEET}/locations/{LOCATION}/memberships/dev-m"]
    assert listed[0]["endpoint"]["gkeCluster"]["resourceLink"] == \
        f"//container.googleapis.com/projects/{FLEET}/locations/{LOCATION}/clusters/dev-cluster-1"

    # gcloud 528's unregister of a GKE cluster: GET the membership, compare its resource link,
    # DELETE; no Kubernetes client (surface/container/fleet/memberships/unregister.py).
    emu.clear_log()
    g.ok(gcloud.unregister_membership(CTX, "dev-m"))
    assert [r for r in emu.mutating_requests()] and all("/memberships/dev-m" in r[1] for r in emu.mutating_requests())
    assert g.json(gcloud.list_memberships(CTX)) == []
    assert "fleet" not in g.json(gcloud.describe_cluster(CTX))
    again = g(gcloud.unregister_membership(CTX, "dev-m"))
    assert again.returncode == 0 and "was not found on the fleet" in again.stderr, "a membership already gone: not an error"

    g.ok(gcloud.register_membership(CTX, "dev-m"))
    fleet = g.json(gcloud.describe_cluster(CTX))["fleet"]
    assert fleet["preRegistered"] is True and fleet["membership"].endswith("/memberships/dev-m"), "registered through the fleet API"
    listed = g.json(gcloud.list_memberships(CTX))
    assert listed[0]["endpoint"]["gkeCluster"]["resourceLink"].startswith("//container.googleapis.com/projects/")
    assert listed[0]["authority"]["issuer"] == \
        f"https://container.googleapis.com/v1/projects/{FLEET}/locations/{LOCATION}/clusters/dev-cluster-1"
    again = g(gcloud.register_membership(CTX, "dev-m"))  # gcloud finds it registered with this very cluster and would update it
    assert again.returncode == 1 and "already registered with the cluster" in again.stderr
    # A freshly registered membership is in no mesh: no spec, DISABLED state.
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert (state.management, state.control_plane_state) == ("", "DISABLED")


def test_a_membership_with_scope_bindings_is_not_unregistered(g, emu):
    """gkehub v1 DeleteMembershipRequest.force: without it (gcloud 528 never sends it) a
    membership with subresources is not deleted."""
    project, = [p for p in {m[0] for m in emu.world.memberships}]
    emu.world.membership_bindings[(project, LOCATION, "dev-m")] = [
        {"name": f"projects/{FLEET}/locations/{LOCATION}/memberships/dev-m/bindings/team-a", "scope": "scopes/team-a"}]
    listed = g.json(gcloud.list_membership_bindings(CTX, "dev-m"))
    assert [b["name"].rsplit("/", 1)[-1] for b in listed] == ["team-a"]
    refused = g(gcloud.unregister_membership(CTX, "dev-m"))
    assert refused.returncode == 1 and "subresources" in refused.stderr
    assert [m["name"] for m in g.json(gcloud.list_memberships(CTX))] == [f"projects/{FLEET}/locations/{LOCATION}/memberships/dev-m"]


def test_fleet_default_member_config_and_blocking_conditions_reach_the_steps(g, emu):
    """Issue "Google's rules, round two", items 5 and 8, through the real gcloud: the fleet's
    default member config is in `mesh describe` (gkehub v1 Feature.fleetDefaultMemberConfig)
    and a joining membership gets it; membership conditions reach mesh_state."""
    from meshops.cluster.fleet_state import fleet_default_management

    fleet = next(iter({m[0] for m in emu.world.memberships}))
    emu.world.fleet_default_management[fleet] = "MANAGEMENT_AUTOMATIC"
    g.ok(gcloud.unregister_membership(CTX, "dev-m"))
    g.ok(gcloud.register_membership(CTX, "dev-m"))
    described = g.json(gcloud.describe_mesh(FLEET))
    assert fleet_default_management(described) == "MANAGEMENT_AUTOMATIC"
    assert mesh_state(described, LOCATION, "dev-m").management == "MANAGEMENT_AUTOMATIC", "joined with the fleet's default"
    emu.world.memberships[(fleet, LOCATION, "dev-m")].conditions = [
        {"code": "LEGACY_MC_SECRETS", "details": "legacy secrets found", "severity": "ERROR"}]
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert [c.code for c in state.blocking_provisioning()] == ["LEGACY_MC_SECRETS"]


def test_describe_mesh_is_read_only(g, emu):
    emu.clear_log()
    described = g.json(gcloud.describe_mesh(FLEET))
    assert described["membershipSpecs"][KEY] == {"mesh": {"management": "MANAGEMENT_AUTOMATIC"}}
    control = described["membershipStates"][KEY]["servicemesh"]["controlPlaneManagement"]
    assert control == {"state": "ACTIVE", "implementation": "ISTIOD",
                       "details": [{"code": "REVISION_READY", "details": "Ready: asm-managed-rapid"}]}
    assert emu.mutating_requests() == []
    assert emu.requests() == [("GET", f"/gkehub/v1/projects/{FLEET}/locations/global/features/servicemesh")]


def test_manual_then_automatic_provisions_on_the_new_channel(g, emu, hooks):
    assert hooks.calls == [("provision", "asm-managed-rapid")]  # add_cluster: already in the mesh
    g.ok(gcloud.set_mesh_management(CTX, "dev-m", "manual"))
    assert hooks.calls[-1] == ("on_manual",)
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert (state.management, state.control_plane_state) == ("MANAGEMENT_MANUAL", "DISABLED")

    g.ok(gcloud.update_release_channel(CTX))  # rapid -> regular while manual
    emu.world.provisioning_seconds = 3600.0
    g.ok(gcloud.set_mesh_management(CTX, "dev-m", "automatic"))
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert (state.management, state.control_plane_state) == ("MANAGEMENT_AUTOMATIC", "PROVISIONING")
    assert ("provision", "asm-managed") not in hooks.calls

    emu.world.provisioning_seconds = 0.0
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert (state.control_plane_state, state.ready_revision(), state.data_plane_state) == ("ACTIVE", "asm-managed", "DISABLED")
    g.json(gcloud.describe_mesh(FLEET))
    assert hooks.calls.count(("provision", "asm-managed")) == 1  # once

    hooks.pods["asm-managed"] = 2
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert state.data_plane_state == "ACTIVE"
    assert state.data_plane_details[0].details == "Service is running."


def test_stalled_without_connectgateway(g, emu, hooks):
    emu.disable_api(FLEET, "connectgateway.googleapis.com")
    # A running control plane stays ACTIVE without the gateway (fake_world's reading).
    assert mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m").control_plane_state == "ACTIVE"
    g.ok(gcloud.set_mesh_management(CTX, "dev-m", "manual"))
    g.ok(gcloud.update_release_channel(CTX))
    g.ok(gcloud.set_mesh_management(CTX, "dev-m", "automatic"))
    state = mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m")
    assert state.control_plane_state == "STALLED"
    assert [(d.code, d.details) for d in state.control_plane_details] == [("REVISION_STALLED", "Failed to provision: asm-managed")]
    emu.enable_api(FLEET, "connectgateway.googleapis.com")
    assert mesh_state(g.json(gcloud.describe_mesh(FLEET)), LOCATION, "dev-m").ready_revision() == "asm-managed"


def test_fault_injection(g, emu):
    emu.fail_next("GET", r"/features/servicemesh$", status=403, message="Permission 'gkehub.features.get' denied")
    done = g(gcloud.describe_mesh(FLEET))
    assert done.returncode == 1 and "gkehub.features.get" in done.stderr
    assert g(gcloud.describe_mesh(FLEET)).returncode == 0  # only the next one


# ------------------------------------------------------------------------ storage
def test_storage_write_read_describe(g, emu):
    url = "gs://gke-mesh-backups/stack/dev-cluster-1/rapid-to-regular/run-1/backup.json"
    payload = json.dumps({"objects": ["é" * 10, "x" * 200_000]})
    g.ok(gcloud.storage_write(url), input=payload)
    assert emu.object_data("gke-mesh-backups", "stack/dev-cluster-1/rapid-to-regular/run-1/backup.json") == payload.encode()
    assert g.ok(gcloud.storage_read(url)) == payload
    missing = g(gcloud.storage_read(url.replace("backup.json", "manifest.json")))
    assert missing.returncode == 1 and "matched no objects" in missing.stderr

    described = g.json(gcloud.describe_bucket("gs://gke-mesh-backups"))
    assert (described["uniform_bucket_level_access"], described["public_access_prevention"], described["versioning_enabled"]) == \
        (True, "enforced", True)
    emu.create_bucket("leaky", ubla=False, pap="inherited", versioning=False)
    described = g.json(gcloud.describe_bucket("gs://leaky"))
    assert (described["uniform_bucket_level_access"], described["public_access_prevention"], described["versioning_enabled"]) == \
        (False, "inherited", False)
    assert g(gcloud.describe_bucket("gs://no-such-bucket")).returncode == 1


# ------------------------------------------------------------------------ meshops itself
@pytest.fixture
def runner(emu, monkeypatch):
    """meshops.cluster.process.run, unchanged, in the emulator's environment: the `gcloud` on PATH is
    the emulator's network-cut shim. Every call's stderr is checked for real-host attempts."""
    env = emu.gcloud_env(network_cut=True)
    import os
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    real_run = subprocess.run

    def spy(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        done = real_run(*args, **kwargs)
        assert_offline(done.stderr or "")
        return done

    monkeypatch.setattr(process.subprocess, "run", spy)
    return process.run


def test_meshops_fleet_reader_and_preflight_checks(emu, runner):
    reader = FleetReader(runner, lambda: 0.0, MemoryCache())
    state = mesh_state(reader.describe(FLEET), LOCATION, "dev-m")
    assert (state.management, state.control_plane_state, state.ready_revision()) == \
        ("MANAGEMENT_AUTOMATIC", "ACTIVE", "asm-managed-rapid")
    reader.describe(FLEET)
    assert reader.fetches == 1

    number = project_number(CTX.project, runner)
    assert number == NUMBER
    assert resolve_membership(CTX, run_json(runner, gcloud.list_memberships(CTX)), number) == "dev-m"
    other = StepContext(**{**CTX.__dict__, "membership": "wrong"})
    with pytest.raises(StepFailed, match="the membership of this cluster is dev-m"):
        resolve_membership(other, run_json(runner, gcloud.list_memberships(other)), number)

    described = run_json(runner, gcloud.describe_cluster(CTX))
    assert preconditions.kind_refusal(described) is None and preconditions.identity_refusal(described) is None
    assert preconditions.channel_refusal(described, run_json(runner, gcloud.server_config(CTX)), "regular") is None
    assert preconditions.operation_refusal(run_json(runner, gcloud.running_operations(CTX)), CTX.cluster) is None
    assert _enabled_apis(Tools(runner=runner), FLEET) >= {"connectgateway.googleapis.com", "mesh.googleapis.com"}
    assert emu.mutating_requests() == []


def test_meshops_missing_cluster_is_one_line_step_failure(runner):
    with pytest.raises(StepFailed) as failure:
        run_json(runner, gcloud.describe_cluster(StepContext(**{**CTX.__dict__, "cluster": "nope"})))
    assert "failed (exit 1)" in str(failure.value) and "\n" not in str(failure.value)


def test_meshops_backup_store_on_gs(emu, runner):
    location = "gs://gke-mesh-backups/stack/dev-cluster-1/rapid-to-regular/run-1"
    check_bucket(location, runner)
    backup = Backup("dev-cluster-1", "rapid", "regular", "run-1",
                    objects={"peerauthentications.security.istio.io": [
                        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                         "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}]},
                    namespaces={"katayan": {"istio.io/rev": "asm-managed-rapid"}}, injected={"katayan": 2})
    store = BackupStore(location, runner)
    ref = store.write(backup)
    assert store.read(ref).peer_authentication_modes() == {"istio-system/default": "STRICT"}
    assert emu.object_data("gke-mesh-backups", "stack/dev-cluster-1/rapid-to-regular/run-1/manifest.json") is not None
    # An overwrite through the API (a new generation) does not matter: the reference pins the
    # generations written, and gcloud reads `gs://B/O#N` (issue "Trust", item 8).
    assert dict(ref.generations).keys() == {"backup.json", "manifest.json"}
    runner(gcloud.storage_write(f"{location}/manifest.json"), input='{"format": 4, "attacker": true}')
    runner(gcloud.storage_write(f"{location}/backup.json"), input="{}")
    assert store.read(ref).peer_authentication_modes() == {"istio-system/default": "STRICT"}
    store.write_record({"record": {"run_id": "run-1"}, "mac": "0" * 64})
    (run,) = runs_in("gs://gke-mesh-backups/stack/dev-cluster-1", runner).values()
    assert run.folder == "gs://gke-mesh-backups/stack/dev-cluster-1/rapid-to-regular/run-1"
    assert set(run.files) == {"backup.json", "manifest.json", "record.json"}, "live and noncurrent versions: one entry each"
    assert int(run.files["manifest.json"]) > int(dict(ref.generations)["manifest.json"]), "the newest generation: the overwrite"
    assert store.read_record() == {"record": {"run_id": "run-1"}, "mac": "0" * 64}
    assert BackupStore("gs://gke-mesh-backups/stack/dev-cluster-1/rapid-to-regular/run-2", runner).read_record() is None
    # Bytes changed under a pinned generation (no API does this: a stand-in for corruption) are refused.
    pinned = dict(ref.generations)["manifest.json"]
    bucket = emu.world.buckets["gke-mesh-backups"]
    (version,) = [o for o in bucket.noncurrent["stack/dev-cluster-1/rapid-to-regular/run-1/manifest.json"] if str(o.generation) == pinned]
    version.data += b" "
    with pytest.raises(StepFailed, match="not the one this migration recorded"):
        store.read(ref)

    emu.create_bucket("leaky", ubla=False, pap="inherited", versioning=True)
    with pytest.raises(StepFailed, match="uniform bucket-level access is off.*public access prevention is not enforced"):
        check_bucket("gs://leaky/backups", runner)


def test_meshops_release_channel_step(emu, runner):
    inp = StepInput(CTX)
    logged: list[str] = []
    result = release_channel.run(inp, Tools(runner=runner, log=logged.append))
    assert result == {"cluster": "dev-cluster-1", "channel": "regular", "changed": True, "from": "rapid"}
    assert logged == ["[dev-cluster-1] release-channel: rapid -> regular"]
    emu.clear_log()
    assert release_channel.run(inp, Tools(runner=runner, log=logged.append))["changed"] is False
    assert emu.mutating_requests() == []


def test_meshops_release_channel_step_reports_injected_failure(emu, runner):
    emu.fail_next("PUT", r"/clusters/dev-cluster-1$", status=400, message="Cluster is running incompatible operation operation-9.")
    with pytest.raises(StepFailed, match="incompatible operation"):
        release_channel.run(StepInput(CTX), Tools(runner=runner, log=lambda line: None))
