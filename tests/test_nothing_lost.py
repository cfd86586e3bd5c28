"""The ten operator paths that lost Istio configuration or left security relaxed (issue
"Nothing lost, whatever the operator does"), each as it happens: the program's own
resources under the engine's rules (tests/chain_driver.py) on the fake cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshops.cluster.backup_store import peer_authentication_modes
from meshops.cluster.objects import digest
from meshops.cluster.process import StepFailed
from meshops.context import Options
from tests.chain_driver import Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report

MUTATING = ("update", "delete", "register", "label", "rollout", "patch", "apply", "replace", "cp")
"""Calls that change the cluster or the fleet. `kubectl create` is left out: it only writes
gke-mesh's own bookkeeping (the owner claim, the migration record), checked separately."""
AP = "authorizationpolicies.security.istio.io"
PA = "peerauthentications.security.istio.io"
VS = "virtualservices.networking.istio.io"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def mesh_view(cluster) -> dict:
    """What must survive a migration: every Istio object, each PeerAuthentication's mode,
    and which namespaces run injected pods."""
    istio = cluster.istio_objects()
    return {"objects": {k: digest(o) for k, o in istio.items()},
            "modes": peer_authentication_modes([o for k, o in istio.items() if k[0] == PA]),
            "injected": sorted({p["metadata"]["namespace"] for p in cluster.injected_pods()})}


BOOKKEEPING = ("gke-mesh-owner", "gke-mesh-migration")


def mutating_calls(world: FakeWorld, since: int = 0) -> list[list[str]]:
    return [c for c in world.calls[since:] if (c[0] == "gcloud" and any(v in c[:5] for v in MUTATING))
            or (c[0] == "kubectl" and c[2] in MUTATING and not set(BOOKKEEPING) & set(c))]


def field_report(tmp_path: Path | None = None, **options) -> tuple[FakeWorld, object, Chain]:
    world = FakeWorld(gcs_root=tmp_path / "gcs" if tmp_path else None)
    cluster = seed_field_report(world)
    return world, cluster, Chain(world, context(), Options(stack="dev", **options))


def record_of(cluster) -> dict | None:
    found = cluster.objects.get(("configmaps", "kube-system", "gke-mesh-migration"))
    return json.loads(found["data"]["record"]) if found else None


def fail_wait_ready_on_connectgateway(world: FakeWorld, chain: Chain) -> None:
    world.enabled_apis.discard("connectgateway.googleapis.com")
    with pytest.raises(StepFailed, match="REVISION_STALLED"):
        chain.up()


def fix_connectgateway(world: FakeWorld) -> None:
    """The fix in the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順':
    enable the API, then re-apply automatic management."""
    world.enabled_apis.add("connectgateway.googleapis.com")
    world(["gcloud", "container", "fleet", "mesh", "update", "--management=automatic", "--memberships=dev-cluster-1",
           "--project=my-project-123456", "--location=asia-northeast1"])


def test_case_1_option_edit_after_a_failure_resumes_with_the_first_backup():
    world, cluster, chain = field_report()
    before = mesh_view(cluster)
    fail_wait_ready_on_connectgateway(world, chain)
    first_backup = chain.results()["backup"]["backup"]
    fix_connectgateway(world)
    chain.options = Options(stack="dev", backup_uri="mesh-backups", restart_workloads=True)
    results = chain.up()
    assert {s for s, a in chain.ran if a == "create"} == {"wait-ready", "restore", "reinject", "verify"}
    assert ("backup", "update") in chain.ran, "the edit reached backup as an update, which keeps its result"
    assert results["backup"]["backup"] == first_backup, "the backup in state is still the first one"
    assert not Path("mesh-backups").exists(), "no second backup of a purged cluster"
    assert results["verify"]["verified"] is True and results["verify"]["compared_with_backup"] is True
    assert mesh_view(cluster) == before


def test_case_2_option_edit_after_success_runs_nothing_against_the_cluster():
    world, cluster, chain = field_report()
    chain.up()
    after_migration = mesh_view(cluster)
    calls = len(world.calls)
    for edit in ({"backup_uri": "elsewhere"}, {"restart_workloads": False}, {"relax_security": False},
                 {"remove_authorization_policies": True}, {"purge_crds": False}, {"wait_timeout_seconds": 600}):
        chain.options = Options(stack="dev", **edit)
        chain.up()
        assert chain.created() == [], edit
        assert {a for _, a in chain.ran} <= {"update"}, edit
    assert world.calls[calls:] == [], "keep runs no CLI at all"
    assert mesh_view(cluster) == after_migration
    assert record_of(cluster) is None


def test_case_3_reverting_the_channel_mid_migration_finishes_on_the_old_channel_from_the_recorded_backup():
    world, cluster, chain = field_report()
    before = mesh_view(cluster)
    fail_wait_ready_on_connectgateway(world, chain)
    first_backup = chain.results()["backup"]["backup"]
    assert record_of(cluster)["phase"] == "automatic"
    fix_connectgateway(world)
    chain.ctx = context(channel="rapid")  # the PR is reverted
    results = chain.up()
    assert results["preflight"]["resumed"] is True and results["preflight"]["to_channel"] == "rapid"
    assert results["backup"]["reused"] is True and results["backup"]["backup"] == first_backup
    assert results["verify"]["verified"] is True and results["verify"]["revision"] == "asm-managed-rapid"
    assert cluster.channel == "rapid"
    assert mesh_view(cluster) == before, "every object, mode and injected namespace is back"
    assert len(list(Path("backups").rglob("manifest.json"))) == 1, "one migration, one backup"


def test_case_4_a_ci_runner_refuses_a_local_backup_before_changing_anything():
    world, cluster, chain = field_report()
    chain.process_env = {"CI": "true"}
    with pytest.raises(StepFailed, match=r"backupUri is the local folder 'backups' on a CI runner.*gs://"):
        chain.up()
    assert mutating_calls(world) == [], "refused by the backup step, before relax-security changes anything"
    assert record_of(cluster)["phase"] == "planned", "the record says nothing was changed yet"
    chain.options = Options(stack="dev", allow_local_backup=True)
    assert chain.up()["verify"]["verified"] is True, "allowLocalBackup accepts the risk explicitly"


def test_case_4_a_fresh_runner_resumes_from_the_bucket(tmp_path):
    world, cluster, chain = field_report(tmp_path, backup_uri="gs://mesh-backups/moves")
    chain.process_env = {"GITHUB_ACTIONS": "true"}
    chain.workdir = tmp_path / "runner-1"
    before = mesh_view(cluster)
    fail_wait_ready_on_connectgateway(world, chain)
    fix_connectgateway(world)
    chain.workdir = tmp_path / "runner-2"  # the next deploy job: another machine, same state backend
    assert chain.up()["verify"]["verified"] is True
    assert mesh_view(cluster) == before
    assert not list((tmp_path / "runner-2").rglob("*.json")), "nothing with cluster data on the runner's disk"


def test_case_4_a_lost_local_backup_stops_with_the_fix_and_takes_no_new_snapshot(tmp_path):
    world, cluster, chain = field_report()
    chain.workdir = tmp_path / "laptop"
    fail_wait_ready_on_connectgateway(world, chain)
    fix_connectgateway(world)
    chain.workdir = tmp_path / "another-laptop"
    with pytest.raises(StepFailed, match="a local backup stays on the machine that wrote it; use a gs:// backupUri"):
        chain.up()
    assert not (tmp_path / "another-laptop" / "backups").exists()
    assert record_of(cluster)["backup"]["location"].startswith("backups/dev/dev-cluster-1/"), "the record still names the first backup"


def test_case_4_an_unsafe_bucket_is_refused_before_anything_changes(tmp_path):
    world, cluster, chain = field_report(tmp_path, backup_uri="gs://open-bucket/moves")
    world.bucket_settings["open-bucket"] = {"uniform_bucket_level_access": False, "public_access_prevention": "inherited",
                                            "versioning_enabled": False}
    with pytest.raises(StepFailed, match="backup bucket gs://open-bucket is not safe.*--uniform-bucket-level-access.*--versioning"):
        chain.up()
    assert mutating_calls(world) == []


def test_case_5_every_refusal_comes_before_the_first_change():
    world, cluster, chain = field_report()
    cluster.put("deployments", {"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}, "spec": {"replicas": 2}})
    before = mesh_view(cluster)
    with pytest.raises(StepFailed, match="istio-system/deployment/istio-ingressgateway"):
        chain.up()
    assert mutating_calls(world) == [], "refused in preflight: nothing relaxed, uninjected or purged"
    assert mesh_view(cluster) == before and record_of(cluster) is None


def test_case_5_a_workload_added_after_preflight_stops_the_purge_and_the_guard_holds():
    world, cluster, chain = field_report()
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    cluster.put("deployments", {"metadata": {"name": "late-gateway", "namespace": "istio-system"}, "spec": {"replicas": 1}})
    with pytest.raises(StepFailed, match="refusing to purge: .*destroying 1 workloads that are not Istio objects and so not in any backup"):
        chain.up()
    assert ("customresourcedefinitions", "", VS) in cluster.objects, "nothing purged"
    chain.in_program = False  # the operator gives up and removes the cluster from the stack
    with pytest.raises(StepFailed, match="mid-migration .*restore by hand: venv/bin/python -m meshops restore --config Pulumi.dev.yaml --cluster dev-cluster-1"):
        chain.up()
    assert "guard" in chain.state, "the stack keeps its hold on a cluster it left relaxed"


def test_case_6_drift_between_a_failure_and_the_retry_is_taken_into_a_supplementary_backup():
    world, cluster, chain = field_report()
    expected = mesh_view(cluster)
    world.fail(lambda argv: argv[0] == "kubectl" and argv[2:4] == ["rollout", "restart"], "injected fault")
    with pytest.raises(StepFailed, match="injected fault"):
        chain.up()
    # Two days later a team adds a VirtualService and tightens a policy to deny-all.
    added = cluster.put(VS, {"metadata": {"name": "new-route", "namespace": "katayan"}, "spec": {"hosts": ["new"]}})
    tightened = cluster.objects[(AP, "katayan", "allow-gateway")]
    tightened["spec"] = {}  # an ALLOW policy with no rules denies everything
    expected["objects"][(VS, "katayan", "new-route")] = digest(added)
    expected["objects"][(AP, "katayan", "allow-gateway")] = digest(tightened)
    results = chain.up()
    assert results["purge"]["supplemented"] is True
    assert results["verify"]["verified"] is True
    assert mesh_view(cluster) == expected, "the new object is back and the tightening kept"
    assert cluster.objects[(AP, "katayan", "allow-gateway")]["spec"] == {}


def test_case_7_policies_are_back_before_any_workload_gets_a_new_sidecar():
    world, cluster, chain = field_report()  # purgeCrds true, removeAuthorizationPolicies false: the defaults
    purge_at = {}

    def restart_after_purge(argv):
        if argv[0] == "kubectl" and argv[2:4] == ["delete", "customresourcedefinitions"]:
            purge_at.setdefault("crd", len(world.calls))
        return False
    world.fail(restart_after_purge, "never")
    world.fail(lambda argv: argv[0] == "kubectl" and argv[2] == "apply", "injected fault at restore")
    with pytest.raises(StepFailed, match="injected fault at restore"):
        chain.up()
    later = world.calls[purge_at["crd"]:]
    assert not [c for c in later if c[0] == "kubectl" and c[2:4] == ["rollout", "restart"]], \
        "a failed restore leaves workloads without sidecars, never on new sidecars without their policies"
    assert cluster.injected_pods() == []
    results = chain.up()
    apply_call = max(i for i, c in enumerate(world.calls) if c[0] == "kubectl" and c[2] == "apply")
    restarts = [i for i, c in enumerate(world.calls) if c[0] == "kubectl" and c[2:4] == ["rollout", "restart"]]
    assert restarts and apply_call < min(i for i in restarts if i > purge_at["crd"])
    assert results["verify"]["verified"] is True
    assert (AP, "katayan", "allow-gateway") in cluster.objects


def test_case_8_a_second_stack_on_the_same_cluster_is_refused():
    world, cluster, chain = field_report()
    fail_wait_ready_on_connectgateway(world, chain)
    other = Chain(world, context(channel="stable"), Options(stack="other-team"))
    calls = len(world.calls)
    with pytest.raises(StepFailed, match=r"is claimed by stack dev \(kube-system/gke-mesh-owner\); one cluster belongs to one stack"):
        other.up()
    assert mutating_calls(world, calls) == []
    fix_connectgateway(world)
    assert chain.up()["verify"]["verified"] is True, "the first stack finishes undisturbed"


def test_case_9_verify_fails_when_injected_namespaces_came_back_empty():
    world, cluster, chain = field_report()
    with pytest.raises(Cancelled):
        chain.up(stop_after="reinject")
    for pod in cluster.injected_pods():  # sidecars gone again (e.g. a webhook failure)
        pod["spec"]["containers"] = [c for c in pod["spec"]["containers"] if c["name"] != "istio-proxy"]
    with pytest.raises(StepFailed, match="2 namespaces that ran injected pods before have none on asm-managed"):
        chain.up()
    assert "verify" not in chain.state and record_of(cluster) is not None, "the record stays in flight"


def test_case_9_verify_fails_on_a_relaxed_peer_authentication():
    world, cluster, chain = field_report()
    with pytest.raises(Cancelled):
        chain.up(stop_after="reinject")
    cluster.objects[(PA, "katayan", "web")]["spec"]["mtls"]["mode"] = "PERMISSIVE"
    with pytest.raises(StepFailed, match="PeerAuthentication modes differ from the backup"):
        chain.up()


def test_case_9_verify_result_says_which_run_it_is_from():
    world, cluster, chain = field_report()
    results = chain.up()
    assert results["verify"]["run_id"] == results["preflight"]["run_id"]
    assert results["verify"]["compared_with_backup"] is True


def test_case_10_destroy_mid_migration_refuses_and_after_success_touches_nothing():
    world, cluster, chain = field_report()
    fail_wait_ready_on_connectgateway(world, chain)
    with pytest.raises(StepFailed, match="is mid-migration"):
        chain.destroy()
    assert "guard" in chain.state
    fix_connectgateway(world)
    chain.up()
    calls = len(world.calls)
    chain.destroy()
    assert chain.state == {}
    assert mutating_calls(world, calls) == [], "destroy leaves the cluster and the mesh alone"
    assert ("configmaps", "kube-system", "gke-mesh-owner") not in cluster.objects, "the claim is released"


def test_case_10_removing_a_cluster_that_never_started_releases_it():
    world, cluster, chain = field_report()
    with pytest.raises(Cancelled):
        chain.up(stop_after="preflight")
    assert record_of(cluster)["phase"] == "planned"
    chain.in_program = False
    chain.up()
    assert record_of(cluster) is None and chain.state == {}


def test_case_3b_a_revert_after_the_membership_was_deleted_and_its_registration_refused():
    """Found on the real engine (tests/test_program_e2e.py, operator paths): the migration
    deleted the membership, GKE Hub refused the registration, the PR is reverted. Preflight
    runs again and must recognise the missing membership as its own doing, and the re-run
    disable-management has nothing to switch."""
    world, cluster, chain = field_report()
    before = mesh_view(cluster)
    world.fail(lambda argv: argv[:5] == ["gcloud", "container", "fleet", "memberships", "register"], "INVALID_ARGUMENT: refused")
    with pytest.raises(StepFailed, match="refused"):
        chain.up()
    assert not world.memberships and record_of(cluster)["phase"] == "registered"
    chain.ctx = context(channel="rapid")  # the PR is reverted
    results = chain.up()
    assert results["preflight"]["resumed"] is True and results["disable-management"]["membership_deleted"] is True
    assert results["verify"]["verified"] is True and results["verify"]["revision"] == "asm-managed-rapid"
    assert mesh_view(cluster) == before and cluster.channel == "rapid"


def test_a_gke_registered_cluster_is_re_registered_the_gke_way_and_resumes_after_a_refusal():
    """Issue "Correct on a real fleet", item 3: re-register the way the cluster was
    registered. The 2025 write-up's cluster was registered by GKE (its `fleet` block): leave
    and join with `clusters update --clear-fleet-project` / `--fleet-project`, never
    `memberships delete` on it. GKE refuses the join once; a plain retry joins without
    leaving again; a revert instead would find the membership missing by our own doing."""
    world, cluster, chain = field_report()
    cluster.pre_registered = False  # container v1 Fleet.preRegistered: registered with clusters update, not the fleet API
    before = mesh_view(cluster)
    world.fail(lambda argv: argv[:4] == ["gcloud", "container", "clusters", "update"] and any(a.startswith("--fleet-project=") for a in argv),
               "FAILED_PRECONDITION: refused once")
    with pytest.raises(StepFailed, match="refused once"):
        chain.up()
    assert not world.memberships and record_of(cluster)["registration"] == "gke" and record_of(cluster)["membership_deleted"] is True
    results = chain.up()
    assert results["verify"]["verified"] is True and mesh_view(cluster) == before
    updates = [c for c in world.calls if c[:4] == ["gcloud", "container", "clusters", "update"]]
    assert sum("--clear-fleet-project" in c for c in updates) == 1 and sum(any(a.startswith("--fleet-project=") for a in c) for c in updates) == 2
    assert not [c for c in world.calls if c[:5] in (["gcloud", "container", "fleet", "memberships", "delete"],
                                                    ["gcloud", "container", "fleet", "memberships", "unregister"],
                                                    ["gcloud", "container", "fleet", "memberships", "register"])]
    assert cluster.fleet_membership.endswith("/memberships/dev-cluster-1")


def test_turning_re_registration_off_after_the_membership_left_stops_with_the_fix_and_loses_nothing():
    """An option edit mid-migration: the GKE-registered cluster left the fleet, its join was
    refused, then the PR sets reregisterMembership: false. enable-management cannot manage a
    membership that no longer exists: one line naming the fix, the backup kept; setting it
    back finishes the migration."""
    world, cluster, chain = field_report()
    cluster.pre_registered = False  # container v1 Fleet.preRegistered: registered with clusters update, not the fleet API
    before = mesh_view(cluster)
    world.fail(lambda argv: argv[:4] == ["gcloud", "container", "clusters", "update"] and any(a.startswith("--fleet-project=") for a in argv),
               "FAILED_PRECONDITION: refused once")
    with pytest.raises(StepFailed, match="refused once"):
        chain.up()
    chain.reregister = False
    with pytest.raises(StepFailed, match=r"deleted membership dev-cluster-1 .* set gke-mesh:migration.reregisterMembership back to true"):
        chain.up()
    assert record_of(cluster)["backup"] is not None and record_of(cluster)["membership_deleted"] is True
    chain.reregister = True
    assert chain.up()["verify"]["verified"] is True and mesh_view(cluster) == before
