"""Destroy safety and secrets, checked on the options every resource is registered with."""

from __future__ import annotations

import re

import pytest

from meshops.steps import STEPS
from tests.conftest import STACK_FILES, minimal_config, run, stack_values

CREATE_MODE = minimal_config(**{"gke-mesh:clusters": [
    {"name": "new-cluster", "location": "asia-northeast1", "mode": "create", "meshNamespaces": ["apps"]}]})
CONFIGS = [stack_values(p) for p in STACK_FILES] + [CREATE_MODE]

# What `pulumi destroy` must not do, per resource type; an unknown type fails the test so
# a new resource cannot slip in without a decision here.
def _command_destroy_safe(r) -> bool:
    """Steps have no delete; the guard's delete only reads the record (and refuses while a
    migration is in flight: tests/test_nothing_lost.py)."""
    if r.inputs["create"] == "python3 -m meshops guard":
        return r.inputs["delete"] == "python3 -m meshops guard-delete" and "triggers" not in r.inputs
    return "delete" not in r.inputs


DESTROY_RULES = {
    "command:local:Command": _command_destroy_safe,
    "gcp:projects/service:Service": lambda r: r.options["retainOnDelete"] and r.inputs["disableOnDestroy"] is False,
    "gcp:gkehub/feature:Feature": lambda r: r.options["retainOnDelete"],
    "gcp:gkehub/featureMembership:FeatureMembership": lambda r: r.options["retainOnDelete"],
    "gcp:container/cluster:Cluster": lambda r: r.options["protect"] and r.inputs["deletionProtection"] is True,
    "gcp:container/nodePool:NodePool": lambda r: r.options["protect"],
    "kubernetes:core/v1:NamespacePatch": lambda r: r.options["retainOnDelete"],
    "pulumi:providers:kubernetes": lambda r: True,  # a provider owns nothing in the cluster
}


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in STACK_FILES] + ["create-mode"])
def test_destroy_leaves_everything_alone(config):
    custom = [r for r in run(config).registrations if r.custom and not r.read]
    assert custom
    for registration in custom:
        assert registration.type in DESTROY_RULES, f"no destroy rule for {registration.type}"
        assert DESTROY_RULES[registration.type](registration), f"{registration.urn} is not destroy-safe"


def test_create_mode_is_covered():
    types = {r.type for r in run(CREATE_MODE).registrations}
    assert {"gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool", "kubernetes:core/v1:NamespacePatch"} <= types


CREDENTIAL = re.compile(r"ya29\.|AKIA[0-9A-Z]{12}|-----BEGIN|\"private_key\"|password|passphrase|bearer ", re.I)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in STACK_FILES] + ["create-mode"])
def test_no_credential_in_command_text_or_environment(config):
    for r in run(config).registrations:
        if r.type != "command:local:Command":
            continue
        assert re.fullmatch(r"python3 -m meshops [a-z-]+", r.inputs["create"]), r.inputs["create"]
        for key, value in r.inputs["environment"].items():
            assert not CREDENTIAL.search(str(value)), f"{r.name}: {key}"


def test_steps_that_read_cluster_objects_keep_them_out_of_logs_and_state():
    for r in run(minimal_config()).registrations:
        if r.type != "command:local:Command":
            continue
        step = r.inputs["create"].rsplit(" ", 1)[1]
        if (step in STEPS and STEPS[step].CLUSTER_DATA) or step == "stack-key":
            assert r.inputs.get("logging") == "stderr", step
            assert sorted(r.options["additionalSecretOutputs"]) == ["stderr", "stdout"], step
        else:
            assert "logging" not in r.inputs and not r.options["additionalSecretOutputs"], step


def test_cluster_data_steps_are_the_ones_that_list_objects():
    assert {name for name, s in STEPS.items() if s.CLUSTER_DATA} == {
        "backup", "relax-security", "uninject", "purge", "reinject", "restore"}
