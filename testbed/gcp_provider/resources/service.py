"""gcp:projects/service:Service: one API enabled in one project (serviceusage v1).

Sources:
- inputs and their rules: terraform-provider-google google_project_service schema
  (resource_google_project_service.go): `service` Required+ForceNew, `project`
  Optional+Computed+ForceNew, `disable_on_destroy` Optional Default true,
  `disable_dependent_services` Optional; pulumi_gcp 10.2.0 projects/service.py adds
  `checkIfServiceHasUsageOnDestroy` and `deletionPolicy` (compared, otherwise unused here).
- id `{project}/{service}`: the same file (projectServiceId.terraformId) and pulumi_gcp
  projects/service.py "## Import" (`{{project_id}}/{{service}}`).
- REST: serviceusage v1 `POST v1/projects/P/services/S:enable` and `:disable`
  (body `disableDependentServices`), `GET v1/projects/P/services/S` (`state` ENABLED or
  DISABLED); both mutations answer a long-running Operation.
"""

from __future__ import annotations

from typing import Any

from testbed.gcp_provider.resources.base import CheckError, Config, Resource, value
from testbed.gcp_provider.rest import Rest


class Service(Resource):
    token = "gcp:projects/service:Service"
    api = "serviceusage"
    inputs = ("project", "service", "disableOnDestroy", "disableDependentServices",
              "checkIfServiceHasUsageOnDestroy", "deletionPolicy")
    replace_on = ("project", "service")
    required = ("service",)

    def check(self, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        checked = super().check(olds, news, config)
        if "disableOnDestroy" not in checked:
            checked["disableOnDestroy"] = True  # TF schema: Default true
        if not checked.get("project"):
            raise CheckError([("project", "no project: set it or the provider's gcp:project")])
        return checked

    @staticmethod
    def path(project: str, service: str) -> str:
        return f"v1/projects/{project}/services/{service}"

    def create(self, api: Rest, inputs: dict[str, Any], config: Config) -> tuple[str, dict[str, Any]]:
        project, service = value(inputs, "project"), value(inputs, "service")
        api.wait(api.call("POST", self.path(project, service) + ":enable", {}))
        id_ = f"{project}/{service}"
        return id_, {**inputs, "id": id_}

    def read(self, api: Rest, id_: str, state: dict[str, Any], config: Config):
        project, _, service = id_.partition("/")
        if not service:
            raise ValueError(f"invalid id {id_!r}: expected {{project}}/{{service}}")
        live = api.get_or_none(self.path(project, service))
        if live is None or live.get("state") != "ENABLED":
            return None
        inputs = {"project": project, "service": service,
                  "disableOnDestroy": state.get("disableOnDestroy", True)}
        for name in ("disableDependentServices", "checkIfServiceHasUsageOnDestroy", "deletionPolicy"):
            if name in state:
                inputs[name] = state[name]
        return inputs, {**inputs, "id": id_}

    def update(self, api: Rest, id_: str, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        # Only provider-side flags can change in place (project and service replace): no call.
        return {**news, "id": id_}

    def delete(self, api: Rest, id_: str, state: dict[str, Any], config: Config) -> None:
        if not value(state, "disableOnDestroy", True):
            return  # TF: disable_on_destroy false removes it from state only
        project, _, service = id_.partition("/")
        body = {"disableDependentServices": bool(value(state, "disableDependentServices", False))}
        api.wait(api.call("POST", self.path(project, service) + ":disable", body))
