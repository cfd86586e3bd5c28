"""Sequences a reviewer found that broke the "nothing lost" claims, kept as regressions.
Each test says what used to happen."""

from __future__ import annotations

import pytest

from meshops.cluster.objects import digest
from meshops.cluster.process import StepFailed
from meshops.context import Options
from tests.chain_driver import Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report
from tests.test_nothing_lost import AP, PA, VS, mesh_view, record_of


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fleet(tmp_path):
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    return world, cluster, Chain(world, context(), Options(stack="dev", backup_uri="gs://mesh-backups/moves"))


def attempt(chain: Chain, **kwargs) -> str:
    try:
        chain.up(**kwargs)
    except (StepFailed, Cancelled) as error:
        return str(error)
    return "ok"


def test_a_change_stopped_half_way_then_reverted_runs_the_whole_chain(fleet):
    """Used to: the steps after the purge kept the first migration's results; `up` was green
    with verified: true on a purged cluster (0 Istio objects, management MANUAL)."""
    world, cluster, chain = fleet
    chain.up()
    before = mesh_view(cluster)
    chain.ctx = context(channel="stable")
    world.fail(lambda argv: argv[:4] == ["gcloud", "container", "clusters", "update"], "quota")
    assert "quota" in attempt(chain)
    chain.ctx = context(channel="regular")  # the PR is reverted
    results = chain.up()
    assert {s for s, a in chain.ran if a == "create"} >= {"reregister-membership", "enable-management", "wait-ready",
                                                          "restore", "reinject", "verify"}
    assert results["verify"]["run_id"] == results["preflight"]["run_id"] != ""
    assert mesh_view(cluster) == before and record_of(cluster) is None


def test_a_channel_changed_by_hand_is_put_back_by_a_rerun(fleet):
    """Used to: release-channel never ran on a rerun; wait-ready failed on every retry with 0
    Istio objects left."""
    world, cluster, chain = fleet
    chain.up()
    before = mesh_view(cluster)
    cluster.channel = "rapid"  # someone runs `gcloud container clusters update --release-channel rapid`
    chain.rerun = "2026-11-26"
    results = chain.up()
    assert cluster.channel == "regular" and results["verify"]["revision"] == "asm-managed"
    assert mesh_view(cluster) == before


def test_a_label_on_a_relaxed_peer_authentication_does_not_keep_it_permissive(fleet):
    """Used to: the labelled PERMISSIVE object went into the supplement as the users' intent."""
    world, cluster, chain = fleet
    before = mesh_view(cluster)
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    pa = cluster.objects[(PA, "katayan", "web")]
    pa["metadata"].setdefault("labels", {})["owner"] = "team-b"
    chain.up()
    assert mesh_view(cluster)["modes"] == before["modes"], "STRICT again, on every port"
    assert cluster.objects[(PA, "katayan", "web")]["metadata"]["labels"]["owner"] == "team-b", "the label is kept"


@pytest.mark.parametrize("how", ["revert", "rerun", "retry"])
def test_edits_after_restore_survive_a_revert_a_rerun_and_a_retry(fleet, how):
    """Used to: a revert or rerun purged and restored the old backup (edits lost); a plain
    retry failed at verify for ever."""
    world, cluster, chain = fleet
    world.fail(lambda argv: argv[0] == "kubectl" and argv[2:4] == ["rollout", "status"], "rollout timed out")
    assert "rollout timed out" in attempt(chain)
    assert record_of(cluster)["restore_verified"] is True
    added = cluster.put(VS, {"metadata": {"name": "hotfix-route", "namespace": "katayan"}, "spec": {"hosts": ["hotfix"]}})
    policy = cluster.objects[(AP, "katayan", "allow-gateway")]
    policy["spec"]["rules"].append({"from": [{"source": {"namespaces": ["monitoring"]}}]})
    intent = mesh_view(cluster)
    if how == "revert":
        chain.ctx = context(channel="rapid")
    elif how == "rerun":
        chain.rerun = "1"
    results = chain.up()
    assert results["verify"]["verified"] is True
    now = mesh_view(cluster)
    assert now["objects"][(VS, "katayan", "hotfix-route")] == digest(added)
    assert now["objects"][(AP, "katayan", "allow-gateway")] == intent["objects"][(AP, "katayan", "allow-gateway")]
    assert record_of(cluster) is None


def test_a_deleted_namespace_does_not_block_verify(fleet):
    """Used to: verify demanded injected pods in a namespace a teammate had deleted, for ever."""
    world, cluster, chain = fleet
    assert attempt(chain, stop_after="backup") == "backup"
    for key in [k for k in cluster.objects if k[1] == "katayan-gateway"] + [("namespaces", "", "katayan-gateway")]:
        cluster.objects.pop(key, None)
    assert chain.up()["verify"]["verified"] is True


def test_a_gateway_deployed_into_istio_system_stops_a_resumed_run_before_any_change(fleet):
    """Used to: on a resume past the purge, preflight skipped the check; relax-security,
    disable-management and uninject changed the cluster before purge refused."""
    world, cluster, chain = fleet
    world.fail(lambda argv: argv[0] == "kubectl" and argv[2:4] == ["rollout", "status"], "rollout timed out")
    attempt(chain)
    cluster.put("deployments", {"metadata": {"name": "gw", "namespace": "istio-system"}, "spec": {"replicas": 1}})
    chain.ctx = context(channel="rapid")
    calls = len(world.calls)
    assert "istio-system/deployment/gw" in attempt(chain)
    assert not [c for c in world.calls[calls:] if c[0] == "kubectl" and c[2] in ("patch", "label", "rollout", "delete")]


def test_an_authorization_policy_a_teammate_deletes_stays_deleted(fleet):
    """A deleted ALLOW policy brought back could widen access: only the policies
    relax-security itself removed are restored."""
    world, cluster, chain = fleet
    assert attempt(chain, stop_after="backup") == "backup"
    del cluster.objects[(AP, "katayan", "allow-gateway")]
    chain.up()
    assert (AP, "katayan", "allow-gateway") not in cluster.objects


def test_policies_relax_security_removed_come_back(tmp_path):
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    chain = Chain(world, context(), Options(stack="dev", backup_uri="gs://b/m", remove_authorization_policies=True))
    assert attempt(chain, stop_after="uninject") == "uninject"
    assert (AP, "katayan", "allow-gateway") not in cluster.objects
    assert record_of(cluster)["removed_policies"] == ["katayan/allow-gateway"]
    chain.up()
    assert (AP, "katayan", "allow-gateway") in cluster.objects


def test_a_record_removed_by_hand_after_the_purge_never_leads_to_an_empty_backup(fleet):
    """Used to: a rerun started a new run and backed up the purged cluster (0 objects), then
    verified it."""
    world, cluster, chain = fleet
    world.enabled_apis.discard("connectgateway.googleapis.com")
    assert "REVISION_STALLED" in attempt(chain)
    del cluster.objects[("configmaps", "kube-system", "gke-mesh-migration")]  # "a stale config map"
    world(["gcloud", "container", "fleet", "mesh", "update", "--management=manual", "--memberships=dev-cluster-1",
           "--project=my-project-123456", "--location=asia-northeast1"])  # provisioning stalled, management back to manual
    manifests = sorted(p for p in world.gcs_root.rglob("manifest.json"))
    chain.rerun = "after-cleanup"
    assert "mesh management is MANUAL and there is no migration record" in attempt(chain)
    assert sorted(world.gcs_root.rglob("manifest.json")) == manifests, "no new backup of the purged cluster"


# ---------------------------------------------------------------------------- second pass
def test_forward_revert_forward_runs_every_step_again(fleet):
    """Used to: going stable -> (revert) regular -> stable again, the steps the first stable
    attempt had run kept its results (same channel, same run id in their triggers), so
    reinject ran on a purged cluster and verify failed for ever."""
    world, cluster, chain = fleet
    chain.up()
    before = mesh_view(cluster)
    chain.ctx = context(channel="stable")
    world.fail(lambda argv: argv[0] == "kubectl" and argv[2:4] == ["rollout", "status"], "rollout stuck")
    assert "rollout stuck" in attempt(chain)
    chain.ctx = context(channel="regular")
    world.fail(lambda argv: argv[:4] == ["gcloud", "container", "clusters", "update"], "quota")
    assert "quota" in attempt(chain)
    chain.ctx = context(channel="stable")
    results = chain.up()
    assert results["verify"]["verified"] is True and cluster.channel == "stable"
    assert mesh_view(cluster) == before


def test_two_preflights_in_one_second_never_share_results(fleet):
    """Used to: the run id was the clock's second; a skip and a new run in the same second
    shared it, and a stopped change reverted in that second exported verified: true with
    PeerAuthentications left PERMISSIVE (the fake's clock does not move here)."""
    world, cluster, chain = fleet
    before = mesh_view(cluster)
    chain.ctx = context(channel="rapid")
    assert chain.up()["preflight"]["action"] == "skip"
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    chain.ctx = context(channel="rapid")
    results = chain.up()
    assert results["verify"]["verified"] is True
    assert mesh_view(cluster) == before and record_of(cluster) is None


def test_a_resumed_run_retargeted_to_a_channel_gke_would_refuse_stops_before_the_teardown(fleet):
    world, cluster, chain = fleet
    world.channel_versions["stable"] = ["1.30.1-gke.1"]
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    chain.ctx = context(channel="stable")
    calls = len(world.calls)
    assert "not one of the stable channel's versions" in attempt(chain)
    assert not [c for c in world.calls[calls:] if c[0] == "kubectl" and c[2] in ("delete", "label", "rollout")]


def test_with_purge_crds_false_an_edit_after_the_purge_is_kept(tmp_path):
    """Used to: the objects stayed served through the purge; restore overwrote a teammate's
    edit made before the retry, and verify said verified."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    chain = Chain(world, context(), Options(stack="dev", backup_uri="gs://b/m", purge_crds=False))
    world.fail(lambda argv: argv[:4] == ["gcloud", "container", "clusters", "update"], "quota")
    assert "quota" in attempt(chain)
    edited = cluster.objects[(VS, "katayan", "katayan-virtualservice")]
    edited["spec"]["hosts"] = ["edited.example"]
    assert chain.up()["verify"]["verified"] is True
    assert cluster.objects[(VS, "katayan", "katayan-virtualservice")]["spec"]["hosts"] == ["edited.example"]
