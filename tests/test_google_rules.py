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


# ============================================================================ 1. honesty first
def test_a_stack_that_is_not_dev_like_must_acknowledge_the_unsupported_procedure():
    from components.settings import ConfigError, parse_settings
    from meshops.review.offline import stack_config
    from tests.conftest import minimal_config

    unacknowledged = minimal_config(**{"gke-mesh:migration": {"acknowledgeUnsupported": False}})
    for stack in ("prod", "staging", "Production-eu"):
        with pytest.raises(ConfigError) as refused:
            parse_settings(stack_config(unacknowledged), stack)
        message = str(refused.value)
        assert message.startswith("gke-mesh:migration.acknowledgeUnsupported: stack ") and one_line(message)
        assert "Supported features (managed)" in message and "about 12 minutes" in message and "new cluster" in message
    assert parse_settings(stack_config(minimal_config()), "prod").clusters[0].migration.acknowledge_unsupported is True
    assert parse_settings(stack_config(minimal_config(**{"gke-mesh:migration": {"enabled": False, "acknowledgeUnsupported": False}})), "prod")
    for stack in ("dev", "test", "dev-eu", "TEST-2"):
        assert parse_settings(stack_config(unacknowledged), stack)


def test_preflight_says_what_google_does_not_support_and_what_it_costs():
    from tests.chain_driver import Cancelled

    world, cluster, chain = migrating()
    with pytest.raises(Cancelled):
        chain.up(stop_after="preflight")
    (line,) = [entry for entry in world.log if "preflight: note:" in entry]
    assert "Google does not support changing a managed Cloud Service Mesh's release channel in place" in line
    assert "about 12 minutes" in line and "new cluster on the target channel" in line


def test_the_readme_first_screen_states_the_cost():
    from tests.conftest import ROOT

    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    for fact in ("Supported features", "does not support this in place", "acknowledgeUnsupported: true", "726 s",
                 "new cluster on the target"):
        assert fact in first_screen.replace("\n", " ").replace("  ", " "), fact


# ============================================================================ 6. multi-cluster settings
def test_asm_options_comes_back_and_is_verified():
    world, cluster, chain = migrating()
    options = {"metadata": {"name": "asm-options", "namespace": "istio-system"}, "data": {"multicluster_mode": "connected"}}
    cluster.put("configmaps", options)
    assert chain.up()["verify"]["verified"] is True
    assert cluster.objects[("configmaps", "istio-system", "asm-options")]["data"] == {"multicluster_mode": "connected"}


def test_verify_fails_when_asm_options_differs_from_the_backup():
    world, cluster, chain = migrating()
    cluster.put("configmaps", {"metadata": {"name": "asm-options", "namespace": "istio-system"}, "data": {"multicluster_mode": "connected"}})
    from tests.chain_driver import Cancelled

    with pytest.raises(Cancelled):
        chain.up(stop_after="reinject")
    cluster.objects[("configmaps", "istio-system", "asm-options")]["data"] = {"multicluster_mode": "manual"}
    error = attempt(chain)
    assert "1 istio-system mesh config maps (asm-options) differ from the backup" in error


def test_legacy_remote_secrets_stop_the_migration_before_anything_changes():
    world, cluster, chain = migrating()
    cluster.put("secrets", {"metadata": {"name": "istio-remote-secret-other", "namespace": "istio-system",
                                         "labels": {"istio/multiCluster": "true"}}, "data": {}})
    before = mesh_view(cluster)
    error = attempt(chain)
    assert "1 legacy Istio remote secrets" in error and "multicluster_mode" in error and one_line(error)
    assert [c for c in writes(world) if "gke-mesh-" not in " ".join(c)] == [] and mesh_view(cluster) == before


# ============================================================================ 8. conditions that stop provisioning
@pytest.mark.parametrize("code", ["LEGACY_MC_SECRETS", "MANAGED_CNI_NOT_ENABLED", "NON_STANDARD_BINARY_USAGE",
                                  "UNSUPPORTED_GATEWAY_CLASS", "CONFIG_VALIDATION_ERROR"])
def test_a_condition_that_would_stop_provisioning_is_refused_before_anything_changes(code):
    world, cluster, chain = migrating()
    (member,) = world.memberships.values()
    member.conditions = [{"code": code, "details": "from the fleet", "severity": "ERROR"}]
    error = attempt(chain)
    assert f"its membership reports {code} (from the fleet)" in error and one_line(error)
    assert writes(world) == []


# ============================================================================ 11. Argo CD 2.x label tracking
def argo_application(world, cluster, name: str, namespace: str = "argocd") -> None:
    from tests.fake_world import crd_object

    cluster.put("customresourcedefinitions", crd_object("argoproj.io", "applications", "Application"))
    if ("namespaces", "", namespace) not in cluster.objects:
        cluster.put("namespaces", {"metadata": {"name": namespace}})
    cluster.put("applications.argoproj.io", {"metadata": {"name": name, "namespace": namespace}, "spec": {}})


def test_argo_cd_2_label_tracking_is_detected_by_its_application():
    world, cluster, chain = migrating()
    argo_application(world, cluster, "mesh-config")
    vs = cluster.objects[("virtualservices.networking.istio.io", "katayan", "katayan-virtualservice")]
    vs["metadata"]["labels"] = {"app.kubernetes.io/instance": "mesh-config"}
    error = attempt(chain)
    assert "1 Istio objects and 0 injection-labelled namespaces are managed by a GitOps tool" in error
    assert [c for c in writes(world) if "gke-mesh-" not in " ".join(c)] == []


def test_the_same_label_from_plain_helm_is_not_refused():
    world, cluster, chain = migrating()
    argo_application(world, cluster, "something-else")
    vs = cluster.objects[("virtualservices.networking.istio.io", "katayan", "katayan-virtualservice")]
    vs["metadata"]["labels"] = {"app.kubernetes.io/instance": "my-helm-release"}
    assert chain.up()["verify"]["verified"] is True


# ============================================================================ 12. node pool versions
def test_a_node_pool_a_patch_behind_does_not_stop_the_migration():
    world, cluster, chain = migrating()
    world.channel_versions["regular"] = ["1.32.3-gke.1000"]
    cluster.node_version = "1.32.3-gke.900"
    assert chain.up()["verify"]["verified"] is True


# ============================================================================ 13. TRAFFIC_DIRECTOR leftovers
def test_synthetic_traffic_director_services_are_deleted_and_neg_annotations_left_and_counted():
    world, cluster, chain = migrating()
    (member,) = world.memberships.values()
    member.implementation = "TRAFFIC_DIRECTOR"
    cluster.put("services", {"metadata": {"name": "web-synthetic", "namespace": "katayan",
                                          "labels": {"istio.io/owned-by": "gsmconfig.gke.io"}}, "spec": {}})
    cluster.put("services", {"metadata": {"name": "web", "namespace": "katayan",
                                          "annotations": {"cloud.google.com/neg": '{"ingress": true}'}}, "spec": {}})
    assert chain.up()["verify"]["verified"] is True
    assert ("services", "katayan", "web-synthetic") not in cluster.objects
    assert cluster.objects[("services", "katayan", "web")]["metadata"]["annotations"] == {"cloud.google.com/neg": '{"ingress": true}'}
    assert any("1 synthetic TRAFFIC_DIRECTOR services deleted; 1 other services carry cloud.google.com/neg" in line for line in world.log)


# ============================================================================ 5. fleet defaults
def test_a_fleet_default_member_config_provisions_at_join_and_preflight_says_so():
    """gkehub v1 Feature.fleetDefaultMemberConfig.mesh.management: a joining membership gets it,
    so the re-registered membership provisions at once, on the channel the cluster then has."""
    world, cluster, chain = migrating()
    world.fleet_default_management = "MANAGEMENT_AUTOMATIC"
    before = mesh_view(cluster)
    results = chain.up()
    assert results["verify"]["verified"] is True and results["verify"]["revision"] == "asm-managed"
    assert any("default member config sets mesh management automatic" in line for line in world.log)
    assert mesh_view(cluster) == before


# ============================================================================ 7. pod-template revision labels
def rev_labelled_deployment(cluster, namespace: str, name: str, label: str, gateway: bool = False) -> None:
    cluster.put("namespaces", {"metadata": {"name": namespace}})  # no namespace label: the pods' own label injects them
    cluster.add_deployment(namespace, name, gateway=gateway)
    deployment = cluster.objects[("deployments", namespace, name)]
    deployment["spec"]["template"] = {"metadata": {"labels": {"istio.io/rev": label},
                                                   **({"annotations": {"inject.istio.io/templates": "gateway"}} if gateway else {})}}


def test_pod_templates_labelled_for_the_old_revision_move_to_the_new_one():
    """Istio chooses injection by pod labels as well as namespace labels (istio.io/rev on the
    pod template): uninject takes the old revision's label off (recorded first), reinject labels
    the template for the new revision, verify checks every such workload."""
    world, cluster, chain = migrating()
    rev_labelled_deployment(cluster, "payments", "api", "asm-managed-rapid")
    results = chain.up()
    assert results["verify"]["verified"] is True
    labels = cluster.objects[("deployments", "payments", "api")]["spec"]["template"]["metadata"]["labels"]
    assert labels == {"istio.io/rev": "asm-managed"}
    api_pods = [p for p in cluster.injected_pods("asm-managed") if p["metadata"]["namespace"] == "payments"]
    assert len(api_pods) == 2


def test_verify_fails_when_one_workload_of_a_namespace_lost_its_sidecar():
    """A partial loss: the namespace still runs injected pods, one workload does not."""
    world, cluster, chain = migrating()
    cluster.add_deployment("katayan", "worker")
    from tests.chain_driver import Cancelled

    with pytest.raises(Cancelled):
        chain.up(stop_after="reinject")
    worker = cluster.objects[("deployments", "katayan", "worker")]
    worker["spec"]["template"] = {"metadata": {"labels": {"sidecar.istio.io/inject": "false"}}}
    cluster.start_pods("katayan", "Deployment", "worker", 2)
    error = attempt(chain)
    assert "1 workloads that ran a sidecar before run pods without one on asm-managed" in error
