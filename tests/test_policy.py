"""The policy pack's validators, called with arguments built from the real program's
registrations (under mocks) and from deliberately broken variants."""

from __future__ import annotations

import copy
import sys

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import ROOT, minimal_config, run

sys.path.insert(0, str(ROOT / "policy"))
import rules  # noqa: E402


def options(r) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=r.options.get("protect", False), ignore_changes=r.options.get("ignoreChanges", []),
                                 delete_before_replace=False, aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=r.options.get("additionalSecretOutputs", []), parent=r.parent)


def as_engine_sends(value, whole_environment_unknown=False):
    """Inputs as the policy SDK hands them to a validator during a preview: the mocks'
    "<unknown>" becomes the engine's unknown sentinel, and every dict and list is wrapped in
    the SDK's unknown-checking proxy (reading an unknown raises UnknownValueError, which
    the SDK turns into an advisory "can't run policy during preview")."""
    def swap(v):
        if v == "<unknown>":
            return UNKNOWN_STRING_VALUE
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v
    value = swap(value)
    if whole_environment_unknown and "environment" in value:
        value["environment"] = UNKNOWN_OBJECT_VALUE
    return unknown_checking_proxy(value)


def stack_args(config, stack="test", mutate=None, policy_config=None, preview=None) -> StackValidationArgs:
    registrations = [r for r in run(config, stack=stack).registrations if r.custom and not r.read]
    if mutate:
        registrations = mutate(copy.deepcopy(registrations))
    props = (lambda r: r.inputs) if preview is None else (lambda r: as_engine_sends(r.inputs, preview == "environment unknown"))
    resources = {r.urn: PolicyResource(r.type, props(r), r.urn, r.name, options(r), None, None, [], {}) for r in registrations}
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


STACK_RULES = (rules.management_after_apis, rules.deletions_after_backup, rules.no_rapid_in_prod, rules.backups_in_a_bucket,
               rules.relaxed_security_is_restored)


def test_the_program_passes_every_rule():
    args = stack_args(CREATE)
    for validate in STACK_RULES:
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


def test_the_prod_pattern_is_case_insensitive():
    rapid = minimal_config(**{"gke-mesh:releaseChannel": "rapid"})
    for stack in ("PROD", "Prod-eu", "production"):
        assert violations(rules.no_rapid_in_prod, stack_args(rapid, stack=stack)), stack
    custom = stack_args(rapid, stack="LIVE", policy_config={"prodStackPattern": "^live$"})
    assert violations(rules.no_rapid_in_prod, custom)
    per_cluster = minimal_config(**{"gke-mesh:clusters": [{"name": "c1", "location": "asia-northeast1", "releaseChannel": "RAPID"}]})
    assert violations(rules.no_rapid_in_prod, stack_args(per_cluster, stack="Prod"))


BUCKET = {"gke-mesh:migration": {"backupUri": "gs://my-bucket/channel-moves"}}


def test_backups_must_be_in_a_bucket_outside_dev_like_stacks():
    local = minimal_config()  # backupUri defaults to the relative folder "backups"
    for stack in ("staging", "prod", "Prod", "qa", "developer-sandbox"):
        assert violations(rules.backups_in_a_bucket, stack_args(local, stack=stack)) == [
            f"dev-cluster-1-backup: backupUri 'backups' is not gs://; stack {stack} is not dev-like, so the backup must be in a bucket"]
        assert violations(rules.backups_in_a_bucket, stack_args(minimal_config(**BUCKET), stack=stack)) == []
    for stack in ("dev", "DEV", "dev-2", "test"):
        assert violations(rules.backups_in_a_bucket, stack_args(local, stack=stack)) == [], stack
    custom = {"devStackPattern": "^sandbox$"}
    assert violations(rules.backups_in_a_bucket, stack_args(local, stack="SANDBOX", policy_config=custom)) == []
    assert violations(rules.backups_in_a_bucket, stack_args(local, stack="dev", policy_config=custom))


def test_the_example_stacks_keep_their_backups_in_buckets():
    from tests.conftest import STACK_FILES, stack_values

    for path in STACK_FILES:
        stack = path.name.split(".")[1]
        assert violations(rules.backups_in_a_bucket, stack_args(stack_values(path), stack=stack)) == [], path.name


def test_relax_security_without_a_restore_descendant_is_a_violation():
    def cut_restore(registrations):
        # restore no longer follows anything of the chain: relax-security has no restore after it
        for r in registrations:
            if r.name.endswith("-restore"):
                r.dependencies = [d for d in r.dependencies if "Command" not in d]
        return registrations

    found = violations(rules.relaxed_security_is_restored, stack_args(minimal_config(), mutate=cut_restore))
    assert found == ["dev-cluster-1-relax-security relaxes security but no restore step of dev-cluster-1 follows it"]

    def drop_restore(registrations):
        return [r for r in registrations if not r.name.endswith("-restore")]

    assert violations(rules.relaxed_security_is_restored, stack_args(minimal_config(), mutate=drop_restore))

    def other_clusters_restore(registrations):
        # the only restore after c1's relax-security is c2's
        two = [r for r in registrations if r.name.endswith("-restore")]
        return cut_restore(registrations) + [_renamed(two[0], "other")]

    assert violations(rules.relaxed_security_is_restored, stack_args(minimal_config(), mutate=other_clusters_restore))


def _renamed(registration, cluster):
    clone = copy.deepcopy(registration)
    clone.urn, clone.name = clone.urn + "-other", f"{cluster}-restore"
    clone.inputs = {**clone.inputs, "environment": {**clone.inputs["environment"], "GKE_MESH_CLUSTER": cluster}}
    clone.dependencies = [d for d in registration.dependencies if d.endswith("-relax-security")] or list(registration.dependencies)
    return clone


@pytest.mark.parametrize("preview", ["state-fed inputs unknown", "environment unknown"])
def test_unknown_values_in_a_preview_never_turn_a_rule_advisory(preview):
    """Every stack rule runs to a verdict with the engine's unknown sentinels behind the SDK's
    proxy (an UnknownValueError escaping a validator would make the SDK downgrade the
    mandatory policy to an advisory "can't run policy during preview")."""
    assert "<unknown>" in repr([r.inputs for r in run(minimal_config()).registrations]), "the preview has unknown inputs"
    rapid_local = minimal_config(**{"gke-mesh:releaseChannel": "rapid"})
    good = stack_args(minimal_config(**BUCKET), stack="staging", preview=preview)
    for validate in STACK_RULES:
        found = violations(validate, good)  # never raises UnknownValueError
        if validate is rules.backups_in_a_bucket and preview == "environment unknown":
            # a backupUri the preview cannot know is refused outside dev-like stacks, not let through
            assert found == ["dev-cluster-1-backup: backupUri is not known in this preview; it must be a gs:// URI in stack staging"]
        else:
            assert found == [], validate.__name__
        violations(validate, stack_args(rapid_local, stack="prod", preview=preview))
    # what a rule decides on is still decided, with the rest unknown
    cut = stack_args(minimal_config(), mutate=drop_dependency_on("mesh.googleapis.com"), preview=preview)
    assert violations(rules.management_after_apis, cut) == ["dev-cluster-1-mesh-management does not depend on mesh.googleapis.com"]
    no_restore = stack_args(minimal_config(), preview=preview,
                            mutate=lambda rs: [r for r in rs if not r.name.endswith("-restore")])
    assert violations(rules.relaxed_security_is_restored, no_restore)
    if preview == "state-fed inputs unknown":
        assert violations(rules.no_rapid_in_prod, stack_args(rapid_local, stack="prod", preview=preview))
        assert violations(rules.backups_in_a_bucket, stack_args(rapid_local, stack="prod", preview=preview))


def test_pack_declares_every_rule():
    text = (ROOT / "policy" / "__main__.py").read_text()
    for name in ("clusters-protected", "apis-stay-on", "management-after-apis", "deletions-after-backup", "no-rapid-in-prod",
                 "backups-in-a-bucket", "relaxed-security-is-restored"):
        assert f'name="{name}"' in text
    assert "MANDATORY" in text
