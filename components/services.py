"""Project APIs the managed mesh needs."""

from __future__ import annotations

import pulumi
from pulumi_gcp import projects


class ProjectServices(pulumi.ComponentResource):
    """Enables a set of APIs in one project.

    Destroying the stack never disables an API (`disable_on_destroy=False` and
    `retain_on_delete`): other workloads in the project may rely on them.
    """

    services: dict[str, projects.Service]
    """The enabling resource of each API, by service name."""

    def __init__(self, name: str, project: str, apis: tuple[str, ...], opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:services:ProjectServices", name, None, opts)
        self.services = {
            api: projects.Service(
                service_resource_name(project, api),
                project=project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for api in apis
        }
        self.register_outputs({"services": list(self.services)})

    def only(self, *apis: str) -> list[projects.Service]:
        """The resources enabling `apis`, for `depends_on`."""
        return [self.services[api] for api in apis]


def service_resource_name(project: str, api: str) -> str:
    """Stable logical name: ``my-project-123456-connectgateway``."""
    return f"{project}-{api.split('.', 1)[0]}"
