"""`python -m meshops plan`: the offline plan contract (docs/architecture.md §7), as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, STACK_FILES

CONTRACT_FIELDS = {"urn", "type", "name", "parent", "dependsOn", "step", "cluster", "inputs", "commands"}


def plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "meshops", "plan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def dev_plan() -> dict:
    done = plan("--config", "Pulumi.dev.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "a successful plan prints nothing on stderr"
    return json.loads(done.stdout)


def test_plan_document_follows_the_contract(dev_plan):
    assert dev_plan["project"] == "gke-mesh" and dev_plan["stack"] == "dev"
    urns = {r["urn"] for r in dev_plan["resources"]}
    for resource in dev_plan["resources"]:
        assert CONTRACT_FIELDS <= set(resource), resource["urn"]
        assert set(resource["dependsOn"]) <= urns, f"{resource['urn']} depends on an unknown resource"
        assert resource["parent"] is None or resource["parent"] in urns


def test_plan_lists_dependencies_before_dependents(dev_plan):
    seen: set[str] = set()
    for resource in dev_plan["resources"]:
        assert set(resource["dependsOn"]) <= seen, resource["urn"]
        seen.add(resource["urn"])


def test_plan_names_steps_and_clusters(dev_plan):
    steps = {(r["step"], r["cluster"]) for r in dev_plan["resources"] if r["step"]}
    for api in ("mesh", "connectgateway", "gkehub", "container"):
        assert (f"api:{api}.googleapis.com", None) in steps
    assert ("mesh-feature", None) in steps
    for role in ("membership", "release-channel", "mesh-management"):
        assert (role, "dev-cluster-1") in steps


def test_plan_lists_the_cli_calls_of_each_step(dev_plan):
    (channel,) = [r for r in dev_plan["resources"] if r["step"] == "release-channel"]
    assert ["gcloud", "container", "clusters", "update", "dev-cluster-1", "--project=my-project-123456",
            "--location=asia-northeast1", "--release-channel=regular", "--quiet"] in channel["commands"]
    assert all(not r["commands"] for r in dev_plan["resources"] if r["type"] != "command:local:Command")


def test_mesh_management_edges_in_the_plan(dev_plan):
    by_urn = {r["urn"]: r for r in dev_plan["resources"]}
    (management,) = [r for r in dev_plan["resources"] if r["step"] == "mesh-management"]
    direct = {by_urn[u]["step"] for u in management["dependsOn"]}
    assert {"api:mesh.googleapis.com", "api:connectgateway.googleapis.com", "mesh-feature", "release-channel"} <= direct


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_example_stack_plans(path):
    done = plan("--config", path.name)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stack"] == path.name.split(".")[1]


def test_plan_is_byte_identical_across_runs():
    assert plan("--config", "Pulumi.staging.yaml").stdout == plan("--config", "Pulumi.staging.yaml").stdout


def test_any_well_formed_stack_file_anywhere(tmp_path):
    stack_file = tmp_path / "cluster-x.yaml"
    stack_file.write_text("config:\n  gcp:project: other-project-1\n  gke-mesh:releaseChannel: STABLE\n"
                          "  gke-mesh:clusters:\n    - {name: c1, location: us-central1-a, membership: c1-m}\n"
                          "  gke-mesh:migration: {acknowledgeUnsupported: true}\n")
    done = plan("--config", str(stack_file), "--stack", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["stack"] == "x"
    (management,) = [r for r in document["resources"] if r["step"] == "mesh-management"]
    assert management["inputs"]["membership"] == "c1-m" and management["inputs"]["membershipLocation"] == "us-central1"


@pytest.mark.parametrize("content,expected", [
    ("config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: extended\n  gke-mesh:clusters: [{name: a, location: us-east1}]\n",
     "gke-mesh:releaseChannel:"),
    ("config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: rapid\n", "gke-mesh:clusters:"),
    ("config: [1, 2]\n", "expected a stack file"),
    ("config:\n  gke-mesh:releaseChannel: rapid\n   bad: indent\n", "not valid YAML"),
    ("config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: {secure: v1:abc}\n", "encrypted"),
])
def test_bad_stack_file_exits_2_with_one_line(tmp_path, content, expected):
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(content)
    done = plan("--config", str(stack_file))
    assert done.returncode == 2
    assert done.stdout == ""
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_missing_file_and_unknown_stack_name_are_clear(tmp_path):
    done = plan("--config", str(tmp_path / "Pulumi.none.yaml"))
    assert (done.returncode, done.stderr.count("\n")) == (2, 1) and "cannot read" in done.stderr
    odd = tmp_path / "settings.yaml"
    odd.write_text("config: {}\n")
    done = plan("--config", str(odd))
    assert done.returncode == 2 and "--stack" in done.stderr


def test_bad_arguments_exit_2_with_one_line():
    done = plan("--config", "Pulumi.dev.yaml", "--format", "xml")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "invalid choice" in done.stderr


def test_plan_shows_each_clusters_chain_in_order():
    from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL

    chain = (*CHAIN_BEFORE_CHANNEL, "release-channel", *CHAIN_AFTER_CHANNEL)
    document = json.loads(plan("--config", "Pulumi.staging.yaml").stdout)
    by_urn = {r["urn"]: r for r in document["resources"]}
    for cluster in ("staging-tokyo", "staging-osaka"):
        steps = {r["step"]: r for r in document["resources"] if r["cluster"] == cluster and r["step"] in chain}
        assert list(steps) == list(chain), "dependencies first: the plan lists the chain in its order"
        for before, after in zip(chain, chain[1:]):
            assert steps[before]["urn"] in steps[after]["dependsOn"]
        foreign = {(s["step"], by_urn[u]["cluster"], by_urn[u]["step"]) for s in steps.values() for u in s["dependsOn"]
                   if by_urn[u]["cluster"] not in (cluster, None)}
        # One cluster at a time (maxParallel 1): osaka's preflight waits for tokyo's verify, nothing else crosses.
        assert foreign == ({("preflight", "staging-tokyo", "verify")} if cluster == "staging-osaka" else set())
