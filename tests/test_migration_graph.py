"""The migration chain as the program registers it (under mocks): order, triggers,
environment, options and the edges to the steady-state resources."""

from __future__ import annotations

import getpass
import json
import os

from meshops.cluster.trust import KEY_ENV
from meshops.context import DECISION_KEY
from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL
from tests.conftest import STACK_FILES, minimal_config, run, stack_values
from tests.graph import Graph

CHAIN = (*CHAIN_BEFORE_CHANNEL, "release-channel", *CHAIN_AFTER_CHANNEL)


def graph(**overrides) -> Graph:
    return Graph(run(minimal_config(**overrides)))


def step(g: Graph, name: str, cluster: str = "dev-cluster-1"):
    return g.named(f"{cluster}-{name}")


def test_steps_follow_each_other_in_chain_order():
    g = graph()
    for before, after in zip(CHAIN, CHAIN[1:]):
        assert step(g, before).urn in step(g, after).dependencies, f"{after} must directly follow {before}"


def test_every_chain_step_reruns_only_on_a_channel_change_and_never_deletes():
    g = graph()
    for name in CHAIN:
        inputs = step(g, name).inputs
        assert inputs["create"] == f"python3 -m meshops {name}"
        assert "delete" not in inputs
        if name == "release-channel":
            assert inputs["update"] == inputs["create"], "the channel change itself is an update of this resource"
        else:
            assert inputs["update"] == f"python3 -m meshops keep {name}", "an option edit reprints the result, runs nothing"
            run_id = [] if name == "preflight" else ["<unknown>"]  # preflight's attempt id, from its stdout
            assert inputs["triggers"] == ["regular", *run_id], name


def test_rerun_is_the_only_other_trigger():
    g = graph(**{"gke-mesh:migration": {"rerun": "2026-11-26"}})
    for name in CHAIN:
        if name != "release-channel":
            run_id = [] if name == "preflight" else ["<unknown>"]
            assert step(g, name).inputs["triggers"] == ["regular", "2026-11-26", *run_id], name


def test_each_step_gets_only_the_options_it_reads():
    g = graph(**{"gke-mesh:migration": {"waitTimeout": "45m"}})
    env = {name: step(g, name).inputs["environment"] for name in CHAIN}
    assert env["wait-ready"]["GKE_MESH_WAIT_TIMEOUT_SECONDS"] == "2700"
    assert [n for n in CHAIN if "GKE_MESH_WAIT_TIMEOUT_SECONDS" in env[n]] == ["wait-ready"]
    assert [n for n in CHAIN if "GKE_MESH_PURGE_CRDS" in env[n]] == ["purge"]
    assert env["backup"]["GKE_MESH_BACKUP_URI"] == "backups" and env["backup"]["GKE_MESH_STACK"] == "organization/gke-mesh/test"
    assert all(env[name][KEY_ENV] == "<unknown>" for name in CHAIN if name != "release-channel"), "the key: from state, at run time"
    assert DECISION_KEY not in env["preflight"] and DECISION_KEY not in env["release-channel"]
    for name in CHAIN:
        if name not in ("preflight", "release-channel"):
            assert env[name][DECISION_KEY] == "<unknown>", "the decision is preflight's stdout, known only at run time"


def test_changing_one_option_changes_only_the_steps_that_read_it():
    before, after = graph(), graph(**{"gke-mesh:migration": {"waitTimeout": "45m"}})
    changed = [n for n in CHAIN if step(before, n).inputs != step(after, n).inputs]
    assert changed == ["wait-ready"]


def test_a_channel_change_changes_every_step_of_the_chain():
    before, after = graph(**{"gke-mesh:releaseChannel": "rapid"}), graph()
    changed = [n for n in CHAIN if step(before, n).inputs != step(after, n).inputs]
    assert changed == list(CHAIN)


def test_enable_management_waits_for_the_mesh_apis_and_management_for_it():
    g = graph()
    enable = step(g, "enable-management")
    for api in ("mesh", "connectgateway"):
        assert g.api("my-project-123456", f"{api}.googleapis.com").urn in enable.dependencies
    assert enable.urn in g.ancestors(step(g, "mesh-management"))
    assert step(g, "reregister-membership").urn in g.named("dev-cluster-1-membership").dependencies


def test_migration_can_be_switched_off():
    g = graph(**{"gke-mesh:migration": {"enabled": False}})
    commands = [r.name for r in g.of_type("command:local:Command")]
    assert commands == ["dev-cluster-1-release-channel"]
    assert g.api("my-project-123456", "container.googleapis.com").urn in step(g, "release-channel").dependencies


def test_reregistration_can_be_switched_off():
    g = graph(**{"gke-mesh:migration": {"reregisterMembership": False}})
    names = {r.name for r in g.of_type("command:local:Command")}
    assert "dev-cluster-1-reregister-membership" not in names
    assert step(g, "release-channel").urn in step(g, "enable-management").dependencies


def test_mesh_namespaces_get_the_channel_agnostic_label_after_wait_ready():
    values = minimal_config(**{"gke-mesh:clusters": [{"name": "dev-cluster-1", "location": "asia-northeast1", "meshNamespaces": ["katayan"]}]})
    g = Graph(run(values))
    patch = g.named("dev-cluster-1-katayan-injection")
    assert patch.inputs["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert patch.options["retainOnDelete"] is True
    assert step(g, "wait-ready").urn in patch.dependencies
    provider = g.named("dev-cluster-1-kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://<endpoint>"
    assert len(g.of_type("pulumi:providers:kubernetes")) == 1


def test_no_provider_without_mesh_namespaces():
    assert not graph().of_type("pulumi:providers:kubernetes")


def test_clusters_chains_are_independent():
    g = Graph(run(stack_values([p for p in STACK_FILES if p.name == "Pulumi.staging.yaml"][0])))
    tokyo = {r.urn for r in g.run.registrations if r.name.startswith("staging-tokyo-")}
    osaka = {r.urn for r in g.run.registrations if r.name.startswith("staging-osaka-")}
    for registration in g.run.registrations:
        if registration.urn in tokyo:
            assert not g.ancestors(registration) & osaka, registration.urn


def test_inputs_hold_no_machine_specific_values():
    text = json.dumps([r.inputs for r in graph().run.registrations])
    for marker in (os.getcwd(), os.path.expanduser("~"), "/tmp/", "/work/", getpass.getuser() + "/"):
        assert marker not in text, marker
