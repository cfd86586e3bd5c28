"""Preflight refuses, before anything changes, what would stop the channel change or the
re-provisioning after the teardown (meshops/cluster/preconditions.py; issue "Correct on a real
fleet", items 1, 4 and 5), in the fake world and as pure functions."""

from __future__ import annotations

import json

import pytest

from meshops.cluster.diagnose import diagnose
from meshops.cluster.fleet_state import Condition, MeshState
from meshops.cluster.preconditions import channel_refusal, identity_refusal, kind_refusal, operation_refusal
from meshops.cluster.process import StepFailed
from meshops.context import Decision, Options
from tests.chain_driver import Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report

MUTATING = ("update", "delete", "register", "label", "rollout", "patch", "apply", "replace", "cp")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def refused(world: FakeWorld, cluster, match: str, by_backup_step: bool = False) -> None:
    """`by_backup_step`: the refusal comes from the backup step, after preflight wrote the
    migration record (untouched: nothing was changed, a revert or a fix carries on)."""
    before = sorted(cluster.istio_objects())
    with pytest.raises(StepFailed, match=match):
        Chain(world, context(), Options(stack="dev")).up()
    assert not [c for c in world.calls if (c[0] == "gcloud" and any(v in c[:5] for v in MUTATING))
                or (c[0] == "kubectl" and c[2] in MUTATING)], "refused before any change"
    assert sorted(cluster.istio_objects()) == before
    if by_backup_step:
        record = json.loads(cluster.objects[("configmaps", "kube-system", "gke-mesh-migration")]["data"]["record"])
        assert record["phase"] == "planned" and record["backup"] is None, record
    else:
        assert ("configmaps", "kube-system", "gke-mesh-migration") not in cluster.objects, "no migration started"


def test_a_version_the_target_channel_does_not_offer_is_refused_before_the_teardown():
    world = FakeWorld()
    cluster = seed_field_report(world)
    cluster.version = "1.33.1-gke.200"  # rapid's newer version
    world.channel_versions["rapid"] = ["1.33.1-gke.200"]
    refused(world, cluster, r"control plane version 1.33.1-gke.200 is not one of the regular channel's versions")


def test_a_running_operation_is_refused():
    world = FakeWorld()
    cluster = seed_field_report(world)
    world.operations.append({"status": "RUNNING", "operationType": "UPGRADE_NODES",
                             "targetLink": f"https://container.googleapis.com/v1/projects/p/locations/l/clusters/{cluster.name}/nodePools/default-pool"})
    refused(world, cluster, r"1 operation\(s\) running on it \(UPGRADE_NODES\)")


def test_autopilot_is_refused():
    world = FakeWorld()
    cluster = seed_field_report(world)
    cluster.autopilot = True
    refused(world, cluster, "Autopilot cluster: writes to kube-system are denied")


def test_pure_rules():
    ok = {"currentMasterVersion": "1.32.3", "nodePools": [{"name": "a", "version": "1.32.3",
                                                          "config": {"workloadMetadataConfig": {"mode": "GKE_METADATA"}}}],
          "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"}}
    config = {"channels": [{"channel": "REGULAR", "validVersions": ["1.32.3"], "defaultVersion": "1.32.3"}]}
    assert channel_refusal(ok, config, "regular") is None
    assert "no stable channel" in channel_refusal(ok, config, "stable")
    behind = {**ok, "nodePools": [{"name": "a", "version": "1.32.2"}]}  # a patch behind: normal, GKE does not refuse it
    assert channel_refusal(behind, config, "regular") is None
    assert identity_refusal(ok) is None
    assert "Workload Identity is off" in identity_refusal({**ok, "workloadIdentityConfig": {}})
    no_metadata = {**ok, "nodePools": [{"name": "legacy", "config": {"workloadMetadataConfig": {"mode": "GCE_METADATA"}}}]}
    assert "node pools legacy do not use GKE_METADATA" in identity_refusal(no_metadata)
    assert kind_refusal(ok) is None
    assert operation_refusal([{"status": "DONE", "targetLink": ".../clusters/c"}], "c") is None
    assert operation_refusal([{"status": "RUNNING", "targetLink": ".../clusters/other"}], "c") is None


def test_istiod_with_kinds_traffic_director_ignores_needs_an_acknowledgement(tmp_path):
    """Issue item 9: EnvoyFilter/WasmPlugin/IstioOperator on ISTIOD refuse before any change
    unless acceptTrafficDirector; then a switch to TRAFFIC_DIRECTOR fails verify."""
    world = FakeWorld()
    cluster = seed_field_report(world)
    cluster.put("envoyfilters.networking.istio.io", {"metadata": {"name": "lua", "namespace": "katayan"}, "spec": {}})
    chain = Chain(world, context(), Options(stack="dev"))
    with pytest.raises(StepFailed, match="holds envoyfilters.networking.istio.io, which TRAFFIC_DIRECTOR ignores"):
        chain.up()
    assert not [c for c in world.calls if c[0] == "kubectl" and c[2] in ("patch", "label", "rollout", "delete")]
    chain.options = Options(stack="dev", accept_traffic_director=True)
    (member,) = world.memberships.values()
    original = world.__class__._mesh_entry

    def comes_back_on_traffic_director(self, m):
        if m.management == "MANAGEMENT_AUTOMATIC" and m.provisioning_started and m.provisioning_started > 0:
            m.implementation = "TRAFFIC_DIRECTOR"
        return original(self, m)
    world._mesh_entry = comes_back_on_traffic_director.__get__(world)
    with pytest.raises(StepFailed, match="implementation switched from ISTIOD to TRAFFIC_DIRECTOR, which ignores envoyfilters"):
        chain.up()


@pytest.mark.parametrize("mark", [{"annotations": {"argocd.argoproj.io/tracking-id": "mesh:networking.istio.io/VirtualService"}},
                                  {"annotations": {"configsync.gke.io/declared-version": "v1"}},
                                  {"labels": {"kustomize.toolkit.fluxcd.io/name": "mesh"}}])
def test_objects_a_gitops_tool_manages_stop_the_migration_before_any_change(mark):
    """Issue item 7: Config Sync / Argo CD / Flux would re-create or fight them: pause sync first."""
    world = FakeWorld()
    cluster = seed_field_report(world)
    vs = cluster.objects[("virtualservices.networking.istio.io", "katayan", "katayan-virtualservice")]
    vs["metadata"].update({k: {**vs["metadata"].get(k, {}), **v} for k, v in mark.items()})
    chain = Chain(world, context(), Options(stack="dev"))
    with pytest.raises(StepFailed, match="managed by a GitOps tool .*pause sync for them first"):
        chain.up()
    assert not [c for c in world.calls if c[0] == "kubectl" and c[2] in ("patch", "label", "rollout", "delete")]


def test_a_cluster_in_another_project_is_told_the_exact_service_agent_grants_with_resolved_numbers():
    world = FakeWorld()
    world.project_numbers.update({"my-project-123456": "111111111111", "team-project-2": "222222222222"})
    cluster = world.add_cluster("team-cluster", "asia-northeast1", "rapid", project="team-project-2")
    cluster.add_deployment("default", "web")
    ctx = context(cluster="team-cluster", project="team-project-2")
    chain = Chain(world, ctx, Options(stack="dev"))
    with pytest.raises(Cancelled):
        chain.up(stop_after="preflight")
    printed = "\n".join(world.log)
    assert "cluster project team-project-2 is not the fleet host project my-project-123456 (number 111111111111)" in printed
    decision = Decision.from_json(chain.state["preflight"].stdout)
    assert (decision.project_number, decision.fleet_project_number) == ("222222222222", "111111111111")
    stalled = MeshState(found=True, control_plane_state="STALLED", control_plane_details=(Condition("REVISION_STALLED", "Failed to provision"),))
    diagnosis = diagnose(stalled, ctx, "team-cluster", {"connectgateway.googleapis.com", "mesh.googleapis.com"}, decision.fleet_project_number)
    mesh_agent = "service-111111111111@gcp-sa-servicemesh.iam.gserviceaccount.com"
    hub_agent = "service-111111111111@gcp-sa-gkehub.iam.gserviceaccount.com"
    for project, member, role in (("my-project-123456", mesh_agent, "anthosservicemesh.serviceAgent"),
                                  ("team-project-2", mesh_agent, "anthosservicemesh.serviceAgent"),
                                  ("team-project-2", hub_agent, "gkehub.serviceAgent"),
                                  ("team-project-2", hub_agent, "gkehub.crossProjectServiceAgent")):
        grant = f"gcloud projects add-iam-policy-binding {project} --member=serviceAccount:{member} --role=roles/{role}"
        assert grant in printed, "preflight prints it before anything changes"
        assert grant in diagnosis.fix, "and a stall's diagnosis repeats it"
    assert "PROJECT_NUMBER" not in printed + diagnosis.fix
    denied = MeshState(found=True, control_plane_state="STALLED",
                       conditions=(Condition("MESH_IAM_CROSS_PROJECT_PERMISSION_DENIED", "cross-project"),))
    cross = diagnose(denied, ctx, "team-cluster", None, decision.fleet_project_number)
    assert cross.code == "MESH_IAM_CROSS_PROJECT_PERMISSION_DENIED" and "on the cluster project team-project-2" in cross.cause
    assert "--role=roles/gkehub.crossProjectServiceAgent" in cross.fix and "--role=roles/gkehub.serviceAgent" in cross.fix


def test_a_cluster_in_the_fleet_project_gets_no_cross_project_lines():
    world = FakeWorld()
    seed_field_report(world)
    Chain(world, context(), Options(stack="dev")).up()
    assert not any("is not the fleet host project" in line for line in world.log)


def test_identity_bound_allow_policies_are_warned_about_in_preflight_without_names():
    world = FakeWorld()
    cluster = seed_field_report(world)  # allow-gateway: ALLOW from namespaces [katayan-gateway]
    cluster.put("authorizationpolicies.security.istio.io", {"metadata": {"name": "allow-health", "namespace": "katayan"},
                                                            "spec": {"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/healthz"]}}]}]}})
    with pytest.raises(Cancelled):
        Chain(world, context(), Options(stack="dev")).up(stop_after="preflight")
    warnings = [line for line in world.log if "preflight: warning:" in line]
    assert len(warnings) == 1 and "1 AuthorizationPolicies in 1 namespaces allow only callers with an mTLS identity" in warnings[0]
    assert "allow-gateway" not in warnings[0] and "removeAuthorizationPolicies: true" in warnings[0]


def test_identity_bound_allow_rule():
    from meshops.cluster.objects import identity_bound_allow

    def ap(spec):
        return {"metadata": {"name": "p", "namespace": "n"}, "spec": spec}
    assert identity_bound_allow(ap({"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}]}))
    assert not identity_bound_allow(ap({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}))
    assert not identity_bound_allow(ap({"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["x"]}}]}]}))
    assert not identity_bound_allow(ap({"rules": [{"from": [{"source": {"namespaces": ["x"]}}]}, {"to": [{"operation": {"ports": ["80"]}}]}]}))
    assert not identity_bound_allow(ap({}))  # allow-nothing is not about identities


def config_sync_on(world: FakeWorld, membership: str = "dev-cluster-1") -> None:
    world.other_features.append({"name": "projects/my-project-123456/locations/global/features/configmanagement",
                                 "membershipSpecs": {f"projects/123456789012/locations/asia-northeast1/memberships/{membership}":
                                                     {"configmanagement": {"configSync": {"enabled": True}}}}})


def test_a_fleet_feature_bound_to_the_membership_is_refused_before_anything_changes():
    world = FakeWorld()
    cluster = seed_field_report(world)
    config_sync_on(world)
    refused(world, cluster, r"fleet features configmanagement are bound to its membership, and re-registration deletes",
            by_backup_step=True)


def test_acknowledged_features_or_no_reregistration_go_on(tmp_path, monkeypatch):
    for index, options in enumerate(({"accept_membership_features": "configmanagement"}, {"reregister_membership": False})):
        folder = tmp_path / str(index)
        folder.mkdir()
        monkeypatch.chdir(folder)  # each world's run has the same id: its own backups
        world = FakeWorld()
        seed_field_report(world)
        config_sync_on(world)
        chain = Chain(world, context(), Options(stack="dev", **options), reregister=options.get("reregister_membership", True))
        assert chain.up()["verify"]["verified"] is True, options


def test_another_clusters_features_do_not_count_and_the_mci_config_membership_always_refuses():
    world = FakeWorld()
    cluster = seed_field_report(world)
    config_sync_on(world, membership="another-cluster")
    world.other_features.append({"name": "projects/my-project-123456/locations/global/features/multiclusteringress",
                                 "spec": {"multiclusteringress": {"configMembership":
                                          "projects/my-project-123456/locations/asia-northeast1/memberships/dev-cluster-1"}}})
    refused(world, cluster, r"config membership of multiclusteringress", by_backup_step=True)


def test_accept_membership_features_is_validated_and_reaches_the_backup_step():
    from components.settings import ConfigError, parse_settings
    from meshops.review.offline import stack_config
    from tests.conftest import minimal_config

    for bad in ("configmanagement", ["Config Sync"], [1]):
        with pytest.raises(ConfigError, match=r"^gke-mesh:migration.acceptMembershipFeatures: expected a list of fleet feature names"):
            parse_settings(stack_config(minimal_config(**{"gke-mesh:migration": {"acceptMembershipFeatures": bad}})))
    settings = parse_settings(stack_config(minimal_config(**{"gke-mesh:migration": {"acceptMembershipFeatures": ["policycontroller", "configmanagement"]}})))
    assert settings.clusters[0].migration.accept_membership_features == ("configmanagement", "policycontroller")
    from components.platform import step_options
    options = step_options(settings.clusters[0], "dev")
    env = options.environment(("accept_membership_features", "reregister_membership"))
    assert Options.from_environment(env).accepted_features() == {"configmanagement", "policycontroller"}
    assert Options.from_environment(Options().environment(("accept_membership_features",))).accepted_features() == set()
