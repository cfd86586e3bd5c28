"""serviceusage v1: services list/get/enable/disable, served under /serviceusage/.

Shapes: gcloud generated client serviceusage_v1_messages.py: ListServicesResponse
{services, nextPageToken}, GoogleApiServiceusageV1Service {name, parent, config:
GoogleApiServiceusageV1ServiceConfig{name, title}, state: ENABLED | DISABLED}, Operation {name, done}.

Calls gcloud 528 makes: `services list --enabled` GET /v1/projects/P/services?filter=state:ENABLED&pageSize=200
(the filter is sent to the server and applied here). Rule kept from tests/fake_world.py: the
fleet project starts with mesh, connectgateway, gkehub and container enabled.
"""

from __future__ import annotations

from .routing import ApiError, Request, Router
from .state import World

P = r"/serviceusage/v1/projects/(?P<project>[^/]+)"


def _service(world: World, pid: str, api: str, enabled: bool) -> dict:
    number = world.number_of(pid) or pid
    return {"name": f"projects/{number}/services/{api}", "parent": f"projects/{number}",
            "config": {"name": api, "title": api.split(".", 1)[0]}, "state": "ENABLED" if enabled else "DISABLED"}


def register(router: Router, world: World) -> None:
    def list_services(req: Request, project: str):
        wanted = req.query.get("filter", "")
        if wanted not in ("", "state:ENABLED"):
            raise ApiError(400, f"The emulator filters only on state:ENABLED, not {wanted!r}", "UNIMPLEMENTED")
        with world.lock:
            pid = world.known_project(project)
            # Only enabled services are listed even without the filter (the full catalogue is not modelled).
            return {"services": [_service(world, pid, api, True) for api in sorted(world.enabled_apis.get(pid, set()))]}

    def get_service(req: Request, project: str, api: str):
        with world.lock:
            pid = world.known_project(project)
            return _service(world, pid, api, api in world.enabled_apis.get(pid, set()))

    def change(req: Request, project: str, api: str, verb: str):
        with world.lock:
            pid = world.known_project(project)
            apis = world.enabled_apis.setdefault(pid, set())
            (apis.add if verb == "enable" else apis.discard)(api)
            # Operation done at once, response carries the service (EnableServiceResponse.service).
            return {"name": f"operations/emulator.{verb}.{world.next_id()}", "done": True,
                    "response": {"@type": f"type.googleapis.com/google.api.serviceusage.v1.{verb.title()}ServiceResponse",
                                 "service": _service(world, pid, api, verb == "enable")}}

    router.add("GET", P + r"/services", list_services)
    router.add("GET", P + r"/services/(?P<api>[^/:]+)", get_service)
    router.add("POST", P + r"/services/(?P<api>[^/:]+):(?P<verb>enable|disable)", change)
