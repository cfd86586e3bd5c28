"""The resource types and functions the stand-in gcp provider serves (one module each)."""

from testbed.gcp_provider.resources.base import Resource
from testbed.gcp_provider.resources.feature import Feature
from testbed.gcp_provider.resources.feature_membership import FeatureMembership
from testbed.gcp_provider.resources.invokes import INVOKES
from testbed.gcp_provider.resources.service import Service

RESOURCES: dict[str, Resource] = {r.token: r for r in (Service(), Feature(), FeatureMembership())}

__all__ = ["INVOKES", "RESOURCES", "Resource"]
