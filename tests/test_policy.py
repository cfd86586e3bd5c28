"""The policy pack's validators, called with arguments built from the real program's
registrations (under mocks) and from deliberately broken variants."""

from __future__ import annotations

import copy
import sys

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs

from tests.conftest import ROOT, minimal_config, run

sys.path.insert(0, str(ROOT / "policy"))
import rules  # noqa: E402


def options(r) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=r.options.get("protect", False), ignore_changes=r.options.get("ignoreChanges", []),
                                 delete_before_replace=False, aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=r.options.get("additionalSecretOutputs", []), parent=r.parent)


def stack_args(config, stack="test", mutate=None, policy_config=None) -> StackValidationArgs:
    registrations = [r for r in run(config, stack=stack).registrations if r.custom and not r.read]
    if mutate:
        registrations = mutate(copy.deepcopy(registrations))
    resources = {r.urn: PolicyResource(r.type, r.inputs, r.urn, r.name, options(r), None, None, [], {}) for r in registrations}
    for r in registrations:
        resources[r.urn].dependencies = [resources[d] for d in r.dependencies if d in resources]
    return StackValidationArgs(list(resources.values()), config=policy_config)


def violations(validate, args) -> list[str]:
    found = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def resource_args(resource: PolicyResource) -> ResourceValidationArgs:
    return ResourceValidationArgs(resource.resource_type, resource.props, resource.urn, resource.name, resource.opts, None)


CREATE = minimal_config(**{"gke-mesh:clusters": [{"name": "c1", "location": "asia-northeast1", "mode": "create"}]})


def test_the_program_passes_every_rule():
    args = stack_args(CREATE)
    for validate in (rules.management_after_apis, rules.deletions_after_backup, rules.no_rapid_in_prod):
        assert violations(validate, args) == []
    for resource in args.resources:
        for validate in (rules.clusters_protected, rules.apis_stay_on):
            assert violations(validate, resource_args(resource)) == [], resource.urn


def test_unprotected_cluster_is_a_violation():
    (cluster,) = [r for r in stack_args(CREATE).resources if r.resource_type == "gcp:container/cluster:Cluster"]
    cluster.opts.protect = False
    assert violations(rules.clusters_protected, resource_args(cluster)) == ["cluster c1-cluster must be protected (protect=True)"]


def test_api_disabled_on_destroy_is_a_violation():
    api = next(r for r in stack_args(minimal_config()).resources if r.resource_type == "gcp:projects/service:Service")
    api.props = {**api.props, "disableOnDestroy": True}
    assert violations(rules.apis_stay_on, resource_args(api))


def drop_dependency_on(service):
    def mutate(registrations):
        urns = {r.urn for r in registrations if r.inputs.get("service") == service}
        for r in registrations:
            r.dependencies = [d for d in r.dependencies if d not in urns]
        return registrations
    return mutate


@pytest.mark.parametrize("service", ["mesh.googleapis.com", "connectgateway.googleapis.com"])
def test_management_without_a_required_api_is_a_violation(service):
    found = violations(rules.management_after_apis, stack_args(minimal_config(), mutate=drop_dependency_on(service)))
    assert found == [f"dev-cluster-1-mesh-management does not depend on {service}"]


def test_purge_without_a_backup_ancestor_is_a_violation():
    def mutate(registrations):
        backup = next(r.urn for r in registrations if r.name.endswith("-backup"))
        for r in registrations:
            r.dependencies = [d for d in r.dependencies if d != backup]
        return registrations
    found = violations(rules.deletions_after_backup, stack_args(minimal_config(), mutate=mutate))
    assert sorted(found) == [f"dev-cluster-1-{step} deletes cluster objects but does not follow dev-cluster-1's backup step"
                             for step in ("purge", "relax-security")]


def test_rapid_in_a_prod_like_stack_is_a_violation():
    rapid = minimal_config(**{"gke-mesh:releaseChannel": "rapid"})
    assert violations(rules.no_rapid_in_prod, stack_args(rapid, stack="prod"))
    assert violations(rules.no_rapid_in_prod, stack_args(rapid, stack="prod-eu"))
    assert violations(rules.no_rapid_in_prod, stack_args(rapid, stack="dev")) == []
    assert violations(rules.no_rapid_in_prod, stack_args(minimal_config(), stack="prod")) == []
    custom = stack_args(rapid, stack="live", policy_config={"prodStackPattern": "^live$"})
    assert violations(rules.no_rapid_in_prod, custom)


def test_pack_declares_every_rule():
    text = (ROOT / "policy" / "__main__.py").read_text()
    for name in ("clusters-protected", "apis-stay-on", "management-after-apis", "deletions-after-backup", "no-rapid-in-prod"):
        assert f'name="{name}"' in text
    assert "MANDATORY" in text
