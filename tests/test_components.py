"""The real program under Pulumi mocks: graph edges, options, inputs, counts, outputs."""

from __future__ import annotations

import json

import pytest

from components.settings import ConfigError
from meshops.review.offline import EchoMocks, RecordingMonitor, run_program, stack_config
from tests.conftest import STACK_FILES, minimal_config, run, stack_values
from tests.graph import Graph

SERVICE = "gcp:projects/service:Service"
FEATURE = "gcp:gkehub/feature:Feature"
FEATURE_MEMBERSHIP = "gcp:gkehub/featureMembership:FeatureMembership"
COMMAND = "command:local:Command"
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"


def graph(values, **kwargs) -> Graph:
    return Graph(run(values, **kwargs))


# Hand-counted from each stack file: APIs = projects x (4 required + extras).
# Commands per cluster: the guard, 12 migration steps and release-channel; one stack-key per
# stack. dev labels 2 meshNamespaces.
# Gated stacks read two stacks: the previous stage and their own last outputs.
EXPECTED_COUNTS = {
    "Pulumi.dev.yaml": {SERVICE: 4, FEATURE: 1, COMMAND: 15, FEATURE_MEMBERSHIP: 1,
                        "pulumi:providers:kubernetes": 1, "kubernetes:core/v1:NamespacePatch": 2},
    "Pulumi.staging.yaml": {SERVICE: 4, FEATURE: 1, COMMAND: 29, FEATURE_MEMBERSHIP: 2, "pulumi:pulumi:StackReference": 2},
    "Pulumi.prod.yaml": {SERVICE: 15, FEATURE: 1, COMMAND: 29, FEATURE_MEMBERSHIP: 2, "pulumi:pulumi:StackReference": 2},
}


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_counts_per_type_for_each_example_stack(path):
    counts = graph(stack_values(path)).counts()
    custom = {t: n for t, n in counts.items() if not t.startswith("gke-mesh:")}
    assert custom == EXPECTED_COUNTS[path.name]
    clusters = len(stack_values(path)["gke-mesh:clusters"])
    assert counts["gke-mesh:platform:ClusterMesh"] == clusters
    assert counts["gke-mesh:fleet:Membership"] == clusters


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_mesh_management_waits_for_mesh_and_connectgateway_apis(path):
    values = stack_values(path)
    g = graph(values)
    fleet = values["gcp:project"]
    required = {g.api(fleet, f"{s}.googleapis.com").urn for s in ("mesh", "connectgateway", "gkehub")}
    managements = g.of_type(FEATURE_MEMBERSHIP)
    assert managements
    for management in managements:
        missing = required - g.ancestors(management)
        assert not missing, f"{management.urn} does not wait for {missing}"
        assert management.inputs["mesh"] == {"management": "MANAGEMENT_AUTOMATIC"}, management.urn
        assert "controlPlane" not in management.inputs["mesh"]


def test_mesh_management_follows_feature_and_release_channel():
    g = graph(minimal_config())
    management = g.named("dev-cluster-1-mesh-management")
    ancestors = g.ancestors(management)
    assert g.named("servicemesh").urn in ancestors
    assert g.named("dev-cluster-1-release-channel").urn in ancestors
    assert management.inputs["membership"] == "dev-cluster-1"
    assert management.inputs["membershipLocation"] == "asia-northeast1"
    assert management.options["retainOnDelete"] is True


def test_feature_is_adopted_by_id_and_never_deleted():
    feature = graph(minimal_config()).named("servicemesh")
    assert feature.inputs == {"location": "global", "name": "servicemesh", "project": "my-project-123456"}
    assert feature.options["importId"] == "projects/my-project-123456/locations/global/features/servicemesh"
    assert feature.options["retainOnDelete"] is True
    # An import with differing inputs is updated to the program's: the fleet's own fields must be ignored.
    assert set(feature.options["ignoreChanges"]) == {"labels", "spec", "fleetDefaultMemberConfig"}
    created = graph(minimal_config(**{"gke-mesh:meshFeature": "create"})).named("servicemesh")
    assert created.options["importId"] == "" and created.options["retainOnDelete"] is True


def test_apis_are_never_disabled_on_destroy():
    for service in graph(stack_values(STACK_FILES[0])).of_type(SERVICE):
        assert service.inputs["disableOnDestroy"] is False, service.urn
        assert service.inputs["disableDependentServices"] is False, service.urn
        assert service.options["retainOnDelete"] is True, service.urn


def test_release_channel_is_declared_with_the_target_in_its_inputs():
    before = graph(minimal_config(**{"gke-mesh:releaseChannel": "rapid"})).named("dev-cluster-1-release-channel")
    after = graph(minimal_config()).named("dev-cluster-1-release-channel")
    assert before.inputs["environment"]["GKE_MESH_CHANNEL"] == "rapid"
    assert after.inputs["environment"]["GKE_MESH_CHANNEL"] == "regular"
    changed = {k for k in after.inputs if after.inputs[k] != before.inputs[k]}
    assert changed == {"environment"}, "a channel change must only change the channel input"
    env_changed = {k for k, v in after.inputs["environment"].items() if before.inputs["environment"][k] != v}
    assert env_changed == {"GKE_MESH_CHANNEL"}
    assert after.inputs["create"] == "python3 -m meshops release-channel"
    assert "delete" not in after.inputs, "destroying the stack must not touch the cluster"
    assert after.inputs["triggers"] == ["<unknown>"], "in a chain: preflight's attempt id (known once it ran), so every preflight run re-checks it"
    plain = graph(minimal_config(**{"gke-mesh:migration": {"enabled": False}})).named("dev-cluster-1-release-channel")
    assert not plain.inputs.get("triggers"), "without a chain a channel change is an in-place update, not a replacement"


def test_release_channel_waits_for_container_api_in_the_cluster_project():
    values = minimal_config(**{"gke-mesh:clusters": [{"name": "c1", "location": "europe-west4", "project": "cluster-project-1"}]})
    g = graph(values)
    assert g.api("cluster-project-1", "container.googleapis.com").urn in g.ancestors(g.named("c1-release-channel"))
    assert g.named("c1-mesh-management").inputs["project"] == "my-project-123456", "the membership lives in the fleet project"


def test_create_mode_owns_a_protected_cluster_ready_for_the_mesh():
    values = minimal_config(**{"gke-mesh:clusters": [{"name": "new-cluster", "location": "asia-northeast1", "mode": "create", "nodeCount": 2}]})
    g = graph(values)
    cluster, pool = g.named("new-cluster-cluster"), g.named("new-cluster-node-pool")
    assert cluster.options["protect"] is True
    assert "releaseChannel" in cluster.options["ignoreChanges"]
    assert cluster.inputs["releaseChannel"] == {"channel": "REGULAR"}
    assert cluster.inputs["workloadIdentityConfig"] == {"workloadPool": "my-project-123456.svc.id.goog"}
    assert cluster.inputs["fleet"] == {"project": "my-project-123456"}
    assert cluster.inputs["resourceLabels"] == {"mesh_id": "proj-<project-number>"}
    assert cluster.inputs["removeDefaultNodePool"] is True
    assert pool.inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert pool.inputs["nodeCount"] == 2
    assert cluster.urn in g.ancestors(g.named("new-cluster-release-channel"))
    assert cluster.urn in g.ancestors(g.named("new-cluster-mesh-management"))


def test_adopt_mode_creates_no_cluster():
    assert not graph(minimal_config()).of_type(CLUSTER)


def test_clusters_share_only_apis_and_feature():
    values = stack_values([p for p in STACK_FILES if p.name == "Pulumi.staging.yaml"][0])
    values["gke-mesh:migration"] = {**values.get("gke-mesh:migration", {}), "maxParallel": 2}
    g = graph(values)
    tokyo = g.ancestors(g.named("staging-tokyo-mesh-management"))
    osaka = g.ancestors(g.named("staging-osaka-mesh-management"))
    shared = [g.by_urn[u] for u in sorted(tokyo & osaka)]
    assert {r.type for r in shared} <= {SERVICE, FEATURE, COMMAND}
    assert [r.name for r in shared if r.type == COMMAND] == ["stack-key"], "the stack's key is the one command they share"


def verify_stdout(args):
    if args.name.endswith("-verify"):
        return {"stdout": json.dumps({"control_plane_state": "ACTIVE", "data_plane_state": "ACTIVE", "revision": "asm-managed",
                                      "implementation": "ISTIOD", "proxy_images": {"proxyv2:1.20.8-asm.33": 4}, "verified": True,
                                      "run_id": "20261126T010000Z"})}
    return {}


def test_stack_outputs_carry_the_verify_result():
    values = minimal_config(**{"gke-mesh:clusters": [{"name": "dev-cluster-1", "location": "asia-northeast1-a", "membership": "dev-m"}]})
    outputs = run(values, preview=False, extra_outputs=verify_stdout).outputs
    assert outputs == {
        "release_channel": "regular",
        "clusters": {"dev-cluster-1": {"project": "my-project-123456", "location": "asia-northeast1-a", "membership": "dev-m",
                                       "membership_location": "asia-northeast1", "release_channel": "regular",
                                       "last_verify": {"verified": True, "run_id": "20261126T010000Z", "control_plane_state": "ACTIVE",
                                                       "data_plane_state": "ACTIVE", "revision": "asm-managed", "implementation": "ISTIOD",
                                                       "proxy_images": {"proxyv2:1.20.8-asm.33": 4}}}},
    }


def test_outputs_are_unverified_until_verify_has_run():
    cluster = run(minimal_config(), preview=False).outputs["clusters"]["dev-cluster-1"]
    assert cluster["last_verify"]["verified"] is False and cluster["last_verify"]["control_plane_state"] == "UNKNOWN"
    assert run(minimal_config()).outputs["clusters"]["dev-cluster-1"] == "<unknown>", "a preview cannot know the result"


def membership_answer(link):
    return {"gcp:gkehub/getMembership:getMembership": lambda args: {
        "name": args["membershipId"], "endpoints": [{"gkeClusters": [{"resourceLink": link}]}]}}


def test_membership_pointing_at_another_cluster_is_refused_naming_both():
    other = "//container.googleapis.com/projects/my-project-123456/locations/asia-northeast1/clusters/other-cluster"
    with pytest.raises(Exception) as raised:
        run(minimal_config(), invokes=membership_answer(other))
    message = str(raised.value)
    assert "dev-cluster-1" in message and "other-cluster" in message and "\n" not in message


def test_membership_pointing_at_this_cluster_is_accepted():
    this = "//container.googleapis.com/projects/my-project-123456/locations/asia-northeast1/clusters/dev-cluster-1"
    assert run(minimal_config(), invokes=membership_answer(this), preview=False).outputs["clusters"]["dev-cluster-1"]["membership"] == "dev-cluster-1"


def test_bad_config_registers_nothing():
    monitor = RecordingMonitor(EchoMocks())
    with pytest.raises(ConfigError, match=r"^gke-mesh:releaseChannel:"):
        run_program(stack_config(minimal_config(**{"gke-mesh:releaseChannel": "extended"})), "test", monitor=monitor)
    assert monitor.registrations == []


def test_same_config_registers_identical_inputs():
    first, second = run(minimal_config()), run(minimal_config())
    # Registration order follows the SDK's concurrency; what is registered must not.
    assert sorted((r.urn, str(r.inputs), r.dependencies) for r in first.registrations) == \
        sorted((r.urn, str(r.inputs), r.dependencies) for r in second.registrations)


def test_feature_membership_names_its_membership_plainly_in_a_preview():
    """A real preview answers the membership read unknown while reregister-membership is
    being replaced; the FeatureMembership must not show a replace because of it."""
    preview = graph(minimal_config(**{"gke-mesh:clusters": [{"name": "c1", "location": "asia-northeast1", "membership": "m-7"}]}))
    assert preview.named("c1-mesh-management").inputs["membership"] == "m-7"
    up = run(minimal_config(**{"gke-mesh:clusters": [{"name": "c1", "location": "asia-northeast1", "membership": "m-7"}]}),
             preview=False)
    (registration,) = [r for r in up.registrations if r.name == "c1-mesh-management"]
    assert registration.inputs["membership"] == "m-7", "the checked name, the same value"
