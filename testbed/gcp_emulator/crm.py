"""cloudresourcemanager v1: projects.get, served under /cloudresourcemanager/.

`gcloud projects describe P` (528) calls GET /v1/projects/P. Shape: gcloud generated client
cloudresourcemanager_v1_messages.py Project {projectId, projectNumber (int64, a JSON
string), name, lifecycleState, createTime}. An unknown project answers 403, as Google does
for a project that does not exist or cannot be seen (see state.World.known_project).
"""

from __future__ import annotations

from .routing import Request, Router
from .state import World


def register(router: Router, world: World) -> None:
    def get_project(req: Request, project: str):
        with world.lock:
            pid = world.known_project(project)
            return {"projectId": pid, "projectNumber": world.number_of(pid) or "0", "name": pid,
                    "lifecycleState": "ACTIVE", "createTime": "2024-01-01T00:00:00.000Z"}

    router.add("GET", r"/cloudresourcemanager/v1/projects/(?P<project>[^/:]+)", get_project)
