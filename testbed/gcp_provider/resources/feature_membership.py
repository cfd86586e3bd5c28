"""gcp:gkehub/featureMembership:FeatureMembership: one membership's entry in a fleet
Feature's `membershipSpecs` map (gkehub v1); here only its `mesh` part is written.

Sources:
- inputs: pulumi_gcp 10.2.0 gkehub/feature_membership.py (project, location, feature,
  membership, membershipLocation, mesh{management, controlPlane}, configmanagement,
  policycontroller, deletionPolicy).
- replace rules: terraform-provider-google resource_gke_hub_feature_membership.go schema:
  `feature`, `location`, `membership`, `membership_location`, `project` are ForceNew;
  `mesh`, `configmanagement`, `policycontroller` are not (in-place update).
- id `projects/{project}/locations/{location}/features/{feature}/membershipId/{membership}`:
  the same file's Create (ReplaceVarsForId) and pulumi_gcp's "## Import" section.
- REST, after the DCL's hand-written feature membership operations (GoogleCloudPlatform
  declarative-resource-client-library, gkehub feature_membership): create/update GET the
  Feature, put this membership's spec into the whole `membershipSpecs` map, and PATCH the
  Feature with `updateMask=membershipSpecs`; delete puts an EMPTY spec ({}) under the key
  the same way (the API drops a membership's entry when its spec is empty); read finds the
  entry by the membership, an empty or missing entry meaning gone.
- the map key `projects/{project}/locations/{membershipLocation}/memberships/{membership}`:
  the DCL writes the project as given (an id); the gkehub v1 reference says the API
  answers keys with the project NUMBER. So an entry is matched by its
  `/locations/{L}/memberships/{M}` tail with the project part equal to the project id or a
  number (every key of one fleet Feature is in the fleet project). The DCL matches by a
  bare suffix of the membership name; this stand-in matches the whole tail (stricter: no
  `my-cluster-1` for `cluster-1`).
"""

from __future__ import annotations

from typing import Any

from testbed.gcp_provider.resources.base import Config, Resource, value
from testbed.gcp_provider.resources.feature import feature_path
from testbed.gcp_provider.rest import ApiError, Rest

SPEC_PARTS = ("mesh", "configmanagement", "policycontroller")


def parse_id(id_: str, config: Config) -> tuple[str, str, str, str]:
    """(project, location, feature, membership) from any accepted id form."""
    parts = id_.split("/")
    if len(parts) == 8 and parts[0] == "projects" and parts[2] == "locations" and parts[4] == "features" and parts[6] == "membershipId":
        return parts[1], parts[3], parts[5], parts[7]
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    if len(parts) == 3 and config.project:
        return config.project, parts[0], parts[1], parts[2]
    raise ValueError(f"invalid FeatureMembership id {id_!r}: expected "
                     "projects/{project}/locations/{location}/features/{feature}/membershipId/{membership}")


def make_id(project: str, location: str, feature: str, membership: str) -> str:
    return f"projects/{project}/locations/{location}/features/{feature}/membershipId/{membership}"


def spec_key(project: str, membership_location: str, membership: str) -> str:
    return f"projects/{project}/locations/{membership_location}/memberships/{membership}"


def find_key(specs: dict[str, Any], project: str, membership_location: str, membership: str) -> str | None:
    """The key of this membership's entry: project id or number, exact location and name."""
    tail = f"/locations/{membership_location}/memberships/{membership}"
    for key in specs:
        head, sep, rest = key.partition(tail)
        if sep and not rest and head.startswith("projects/"):
            owner = head[len("projects/"):]
            if owner == project or owner.isdigit():
                return key
    return None


def spec_body(inputs: dict[str, Any]) -> dict[str, Any]:
    """This membership's spec in the REST shape: the pulumi nested objects are the same
    camelCase names (mesh{management, controlPlane}); empty parts are left out."""
    body = {}
    for part in SPEC_PARTS:
        found = value(inputs, part)
        if isinstance(found, dict):
            found = {k: v for k, v in found.items() if v not in (None, "")}
        if found:
            body[part] = found
    return body


class FeatureMembership(Resource):
    token = "gcp:gkehub/featureMembership:FeatureMembership"
    api = "gkehub"
    inputs = ("project", "location", "feature", "membership", "membershipLocation", "mesh",
              "configmanagement", "policycontroller", "deletionPolicy")
    replace_on = ("project", "location", "feature", "membership", "membershipLocation")
    required = ("location", "feature", "membership")

    @staticmethod
    def _names(inputs: dict[str, Any]) -> tuple[str, str, str, str, str]:
        location = value(inputs, "location")
        # No membershipLocation: the DCL key uses the feature's location.
        return (value(inputs, "project"), location, value(inputs, "feature"), value(inputs, "membership"),
                value(inputs, "membershipLocation") or location)

    @staticmethod
    def _specs(api: Rest, project: str, location: str, feature: str) -> dict[str, Any]:
        return dict(api.get(feature_path(project, location, feature)).get("membershipSpecs") or {})

    @staticmethod
    def _patch(api: Rest, project: str, location: str, feature: str, specs: dict[str, Any]) -> None:
        api.wait(api.call("PATCH", feature_path(project, location, feature), {"membershipSpecs": specs},
                          {"updateMask": "membershipSpecs"}))

    def _write(self, api: Rest, inputs: dict[str, Any]) -> str:
        project, location, feature, membership, membership_location = self._names(inputs)
        specs = self._specs(api, project, location, feature)
        key = find_key(specs, project, membership_location, membership) or spec_key(project, membership_location, membership)
        specs[key] = spec_body(inputs)
        self._patch(api, project, location, feature, specs)
        return make_id(project, location, feature, membership)

    def create(self, api: Rest, inputs: dict[str, Any], config: Config) -> tuple[str, dict[str, Any]]:
        id_ = self._write(api, inputs)
        return id_, {**inputs, "id": id_}

    def update(self, api: Rest, id_: str, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        self._write(api, news)
        return {**news, "id": id_}

    def read(self, api: Rest, id_: str, state: dict[str, Any], config: Config):
        project, location, feature, membership = parse_id(id_, config)
        membership_location = value(state, "membershipLocation") or location
        try:
            specs = self._specs(api, project, location, feature)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        key = find_key(specs, project, membership_location, membership)
        if key is None or not specs[key]:
            return None
        live = specs[key]
        inputs: dict[str, Any] = {"project": project, "location": location, "feature": feature, "membership": membership}
        if "membershipLocation" in state or membership_location != location:
            inputs["membershipLocation"] = membership_location
        for part in SPEC_PARTS:
            if live.get(part):
                inputs[part] = live[part]
        if "deletionPolicy" in state:
            inputs["deletionPolicy"] = state["deletionPolicy"]
        return inputs, {**inputs, "id": id_}

    def delete(self, api: Rest, id_: str, state: dict[str, Any], config: Config) -> None:
        project, location, feature, membership = parse_id(id_, config)
        membership_location = value(state, "membershipLocation") or location
        specs = self._specs(api, project, location, feature)
        key = find_key(specs, project, membership_location, membership)
        if key is None:
            return
        specs[key] = {}
        self._patch(api, project, location, feature, specs)
