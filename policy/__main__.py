"""The gke-mesh policy pack: `pulumi preview --policy-pack policy` (create its venv first:
`make policy-venv`, i.e. `python3 -m venv policy/venv && policy/venv/bin/pip install -r
policy/requirements.txt`; PulumiPolicy.yaml names that venv)."""

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

import rules

MANDATORY = EnforcementLevel.MANDATORY

PolicyPack(
    name="gke-mesh",
    enforcement_level=MANDATORY,
    policies=[
        ResourceValidationPolicy(name="clusters-protected", description=rules.clusters_protected.__doc__,
                                 validate=rules.clusters_protected, enforcement_level=MANDATORY),
        ResourceValidationPolicy(name="apis-stay-on", description=rules.apis_stay_on.__doc__,
                                 validate=rules.apis_stay_on, enforcement_level=MANDATORY),
        StackValidationPolicy(name="management-after-apis", description=rules.management_after_apis.__doc__,
                              validate=rules.management_after_apis, enforcement_level=MANDATORY),
        StackValidationPolicy(name="deletions-after-backup", description=rules.deletions_after_backup.__doc__,
                              validate=rules.deletions_after_backup, enforcement_level=MANDATORY),
        StackValidationPolicy(name="no-rapid-in-prod", description=rules.no_rapid_in_prod.__doc__,
                              validate=rules.no_rapid_in_prod, enforcement_level=MANDATORY,
                              config_schema=PolicyConfigSchema(properties={
                                  "prodStackPattern": {"type": "string", "default": rules.DEFAULT_PROD_PATTERN}})),
        StackValidationPolicy(name="backups-in-a-bucket", description=rules.backups_in_a_bucket.__doc__,
                              validate=rules.backups_in_a_bucket, enforcement_level=MANDATORY,
                              config_schema=PolicyConfigSchema(properties={
                                  "devStackPattern": {"type": "string", "default": rules.DEFAULT_DEV_PATTERN}})),
        StackValidationPolicy(name="relaxed-security-is-restored", description=rules.relaxed_security_is_restored.__doc__,
                              validate=rules.relaxed_security_is_restored, enforcement_level=MANDATORY),
    ],
)
