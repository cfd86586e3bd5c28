"""The gke-mesh policy pack: `pulumi preview --policy-pack policy`."""

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
    ],
)
