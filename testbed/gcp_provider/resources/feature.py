"""gcp:gkehub/feature:Feature: a fleet Feature such as `servicemesh` (gkehub v1).

Sources:
- inputs: pulumi_gcp 10.2.0 gkehub/feature.py (name, location, project, labels, spec,
  fleetDefaultMemberConfig, deletionPolicy; outputs createTime, updateTime, deleteTime,
  effectiveLabels, pulumiLabels, resourceStates[{hasResources, state}],
  states[{states[{code, description, updateTime}]}]).
- replace rules: terraform-provider-google google_gke_hub_feature schema: `name` and
  `location` ForceNew (seen in resource_gke_hub_feature.go); `project` ForceNew is the
  provider-wide convention for `project` (not re-checked in that file here).
- id `projects/{project}/locations/{location}/features/{name}` and the import forms
  `{project}/{location}/{name}`, `{location}/{name}`: pulumi_gcp gkehub/feature.py "## Import".
- REST: gkehub v1 `POST v1/projects/P/locations/L/features?featureId=N`,
  `GET`/`PATCH ?updateMask=`/`DELETE v1/projects/P/locations/L/features/N` (mutations answer
  an Operation). updateMask lists the changed top-level fields among labels, spec and
  fleetDefaultMemberConfig (the DCL's Feature update sends `labels,spec`).
- `spec` and `fleetDefaultMemberConfig` are passed through in the REST shape (camelCase
  object); pulumi's shape for these nests the same names. No source compares the two
  beyond the top level: the program sets neither.
"""

from __future__ import annotations

from typing import Any

from testbed.gcp_provider.resources.base import Config, Resource, value
from testbed.gcp_provider.rest import Rest

MUTABLE = ("labels", "spec", "fleetDefaultMemberConfig")


def parse_id(id_: str, config: Config) -> tuple[str, str, str]:
    parts = id_.split("/")
    if len(parts) == 6 and parts[0] == "projects" and parts[2] == "locations" and parts[4] == "features":
        return parts[1], parts[3], parts[5]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and config.project:
        return config.project, parts[0], parts[1]
    raise ValueError(f"invalid Feature id {id_!r}: expected projects/{{project}}/locations/{{location}}/features/{{name}}")


def feature_path(project: str, location: str, name: str) -> str:
    return f"v1/projects/{project}/locations/{location}/features/{name}"


class Feature(Resource):
    token = "gcp:gkehub/feature:Feature"
    api = "gkehub"
    inputs = ("name", "location", "project", "labels", "spec", "fleetDefaultMemberConfig", "deletionPolicy")
    replace_on = ("name", "location", "project")
    required = ("location",)
    computed = ("createTime", "updateTime", "deleteTime", "effectiveLabels", "pulumiLabels", "resourceStates", "states")

    def _outputs(self, inputs: dict[str, Any], live: dict[str, Any], project: str, location: str, name: str) -> dict[str, Any]:
        resource_state = live.get("resourceState") or {}
        state = (live.get("state") or {}).get("state")
        labels = live.get("labels") or {}
        return {
            **inputs,
            "id": f"projects/{project}/locations/{location}/features/{name}",
            "name": name, "location": location, "project": project,
            "createTime": live.get("createTime", ""), "updateTime": live.get("updateTime", ""),
            "deleteTime": live.get("deleteTime", ""),
            "effectiveLabels": labels, "pulumiLabels": labels,
            "resourceStates": [{"state": resource_state.get("state", ""), "hasResources": bool(resource_state.get("hasResources", False))}],
            "states": [{"states": [state]}] if state else [],
        }

    def create(self, api: Rest, inputs: dict[str, Any], config: Config) -> tuple[str, dict[str, Any]]:
        project, location, name = value(inputs, "project"), value(inputs, "location"), value(inputs, "name")
        body = {k: value(inputs, k) for k in MUTABLE if value(inputs, k)}
        api.wait(api.call("POST", f"v1/projects/{project}/locations/{location}/features", body, {"featureId": name}))
        live = api.get(feature_path(project, location, name))
        outputs = self._outputs(inputs, live, project, location, name)
        return outputs["id"], outputs

    def read(self, api: Rest, id_: str, state: dict[str, Any], config: Config):
        project, location, name = parse_id(id_, config)
        live = api.get_or_none(feature_path(project, location, name))
        if live is None:
            return None
        # Inputs as an import sees them: what the live Feature sets, nothing more, so a
        # program that declares only name/location/project matches a bare Feature.
        inputs: dict[str, Any] = {"name": name, "location": location, "project": project}
        for key in MUTABLE:
            if live.get(key):
                inputs[key] = live[key]
        if "deletionPolicy" in state:
            inputs["deletionPolicy"] = state["deletionPolicy"]
        return inputs, self._outputs(inputs, live, project, location, name)

    def update(self, api: Rest, id_: str, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        project, location, name = parse_id(id_, config)
        changed = [k for k in self.diff(olds, news).changes if k in MUTABLE]
        if changed:
            body = {k: value(news, k) or {} for k in changed}
            api.wait(api.call("PATCH", feature_path(project, location, name), body, {"updateMask": ",".join(changed)}))
        live = api.get(feature_path(project, location, name))
        return self._outputs(news, live, project, location, name)

    def delete(self, api: Rest, id_: str, state: dict[str, Any], config: Config) -> None:
        project, location, name = parse_id(id_, config)
        api.wait(api.call("DELETE", feature_path(project, location, name)))
