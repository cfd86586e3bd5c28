"""Google's rules for the in-place workaround (issue "Google's rules, round two"), each with
the page or gcloud 528 source file it rests on, on the fake cluster and fleet through the
program's own resources. The testbed's emulator checks the same against the real gcloud
(tests/test_gcp_emulator.py)."""

from __future__ import annotations

import pytest

from meshops.context import Options
from tests.chain_driver import Chain, context
from tests.fake_world import FakeWorld, seed_field_report
from tests.test_nothing_lost import mesh_view, record_of
from tests.test_trust import attempt, one_line, writes

STACK = "organization/gke-mesh/dev"
UNREGISTER = ["gcloud", "container", "fleet", "memberships", "unregister"]
DELETE = ["gcloud", "container", "fleet", "memberships", "delete"]
CLEAR = "--clear-fleet-project"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def migrating(pre_registered: bool = True, **options):
    world = FakeWorld()
    cluster = seed_field_report(world, gke_registered=not pre_registered)
    chain = Chain(world, context(channel="regular"), Options(stack=STACK, **options))
    return world, cluster, chain


# ============================================================================ 2, 3. registration
def test_a_cluster_registered_through_the_fleet_api_is_unregistered_with_memberships_unregister():
    """container v1 Fleet.preRegistered ("registered through the fleet API") decides the way; gcloud
    528's `memberships unregister --gke-uri` checks the link and deletes, with no Kubernetes
    client (surface/container/fleet/memberships/unregister.py); `delete` is for stale memberships."""
    world, cluster, chain = migrating(pre_registered=True)
    assert cluster.fleet_membership and cluster.pre_registered
    before = mesh_view(cluster)
    assert chain.up()["verify"]["verified"] is True and mesh_view(cluster) == before
    unregisters = [c for c in world.calls if c[:5] == UNREGISTER]
    assert len(unregisters) == 1 and any(a.startswith("--gke-uri=https://container.googleapis.com/v1/projects/") for a in unregisters[0])
    assert not [c for c in world.calls if c[:5] == DELETE or CLEAR in c]
    assert cluster.pre_registered is True, "registered again through the fleet API"


def test_a_cluster_registered_with_clusters_update_leaves_and_joins_that_way():
    """The fleet unregister page documents `clusters update --clear-fleet-project` for clusters
    registered with `clusters create/update` (preRegistered false)."""
    world, cluster, chain = migrating(pre_registered=False)
    assert chain.up()["verify"]["verified"] is True
    assert sum(CLEAR in c for c in world.calls) == 1 and not [c for c in world.calls if c[:5] in (UNREGISTER, DELETE)]


def test_unregister_is_repeatable_when_the_membership_is_already_gone():
    """gcloud 528 _UnregisterGKE: a membership not found is not an error, so a resumed step
    whose first try deleted it goes on."""
    world, cluster, chain = migrating()
    world.fail(lambda argv: argv[:5] == UNREGISTER, "connection reset", after=True)
    assert "connection reset" in attempt(chain)
    assert record_of(cluster)["membership_deleted"] is True and not world.memberships
    assert chain.up()["verify"]["verified"] is True


# ============================================================================ 4. sub-resources
def test_scope_bindings_stop_the_migration_before_anything_changes():
    """gkehub v1 DeleteMembershipRequest.force: without it a membership with subresources is
    not deleted, and gcloud 528 never sends it: found after the teardown, the chain would stop
    with the mesh gone. Listed at backup time, before any change."""
    world, cluster, chain = migrating()
    world.membership_bindings[("asia-northeast1", "dev-cluster-1")] = [
        {"name": "projects/my-project-123456/locations/asia-northeast1/memberships/dev-cluster-1/bindings/team-a"}]
    before = mesh_view(cluster)
    error = attempt(chain)
    assert "1 fleet scope binding(s) (team-a)" in error and "reregisterMembership: false" in error and one_line(error)
    assert [c for c in writes(world) if "gke-mesh-" not in " ".join(c)] == [] and mesh_view(cluster) == before


def test_a_scope_binding_added_after_the_backup_stops_before_the_membership_goes():
    world, cluster, chain = migrating()
    world.fail(lambda argv: argv[:5] == ["gcloud", "container", "clusters", "update", "dev-cluster-1"]
               and any(a.startswith("--release-channel") for a in argv), "stop before re-registration")
    assert "stop before re-registration" in attempt(chain)
    world.membership_bindings[("asia-northeast1", "dev-cluster-1")] = [{"name": ".../bindings/late"}]
    error = attempt(chain)
    assert "scope binding(s) (late)" in error
    assert not [c for c in world.calls if c[:5] == UNREGISTER] and world.memberships, "the membership is still there"
    del world.membership_bindings[("asia-northeast1", "dev-cluster-1")]  # the team removes it, to re-create after the move
    assert chain.up()["verify"]["verified"] is True


def test_without_re_registration_bindings_do_not_matter():
    world, cluster, chain = migrating(reregister_membership=False)
    chain.reregister = False
    world.membership_bindings[("asia-northeast1", "dev-cluster-1")] = [{"name": ".../bindings/team-a"}]
    assert chain.up()["verify"]["verified"] is True
