"""A node, as far as Pod status goes: what a kubelet reports for each pod.

There is no scheduler and no kubelet in the testbed. This thread lists Pods every
`interval` seconds and writes, through the status subresource (a merge patch of
/pods/<name>/status, as a kubelet's status manager patches it), what a kubelet would report
once the containers run (Kubernetes docs, "Pod Lifecycle": phase Running; conditions
PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady, Ready; a
containerStatus per container with state.running and ready). The ReplicaSet and
Deployment controllers then count the pods ready/available (Kubernetes docs,
"Deployments": availableReplicas, minReadySeconds 0) and `kubectl rollout status` ends.

A pod with a container whose image is literally `auto` is an un-injected gateway: the
image cannot be pulled (Istio analysis message IST0147; Istio docs, "Installing Gateways").
It is reported Pending with that container waiting in ImagePullBackOff (Kubernetes docs,
"Images": ImagePullBackOff) and the pod not Ready.

spec.nodeName stays empty. The API server deletes an unscheduled pod at once instead of
waiting for a kubelet to confirm (kube-apiserver pod strategy: graceful deletion only for
pods bound to a node), so ReplicaSets scale down and namespaces empty without a kubelet;
binding pods to a node that does not exist would leave them Terminating forever and make
the pod garbage collector delete them as orphans. The server accepts a Running status
without a node (measured in tests/test_managed_mesh_real.py).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from testbed.managed_mesh.api import Api

PLACEHOLDER_IMAGE = "auto"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_status(pod: dict, now: str) -> dict:
    """The status a kubelet would report for `pod` (its containers started, or stuck)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    stuck = [c["name"] for c in containers if c.get("image") == PLACEHOLDER_IMAGE]
    ready = not stuck
    statuses = []
    for container in containers:
        if container["name"] in stuck:
            state = {"waiting": {"reason": "ImagePullBackOff",
                                 "message": f'Back-off pulling image "{PLACEHOLDER_IMAGE}"'}}
            statuses.append({"name": container["name"], "image": container.get("image", ""), "imageID": "",
                             "ready": False, "started": False, "restartCount": 0, "state": state})
        else:
            statuses.append({"name": container["name"], "image": container.get("image", ""),
                             "imageID": f"testbed://{container.get('image', '')}", "containerID": f"testbed://{container['name']}",
                             "ready": True, "started": True, "restartCount": 0,
                             "state": {"running": {"startedAt": now}}})

    def condition(kind: str, true: bool, reason: str | None = None) -> dict:
        found = {"type": kind, "status": "True" if true else "False", "lastTransitionTime": now, "lastProbeTime": None}
        if reason and not true:
            found["reason"] = reason
        return found

    conditions = [condition("PodReadyToStartContainers", True), condition("Initialized", True),
                  condition("ContainersReady", ready, "ContainersNotReady"), condition("Ready", ready, "ContainersNotReady"),
                  condition("PodScheduled", True)]
    return {"phase": "Running" if ready else "Pending", "conditions": conditions, "containerStatuses": statuses,
            "startTime": now, "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort")}


def up_to_date(pod: dict, wanted: dict) -> bool:
    """Whether the pod already reports what we would write (ignoring timestamps)."""
    status = pod.get("status") or {}
    if status.get("phase") != wanted["phase"]:
        return False
    ready = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if ready != {c["type"]: c["status"] for c in wanted["conditions"]}:
        return False
    have = [(c.get("name"), c.get("image"), c.get("ready")) for c in status.get("containerStatuses") or []]
    return have == [(c["name"], c["image"], c["ready"]) for c in wanted["containerStatuses"]]


class Node:
    """start()/stop(); `patched` counts status writes, `errors` keeps the last few failures."""

    def __init__(self, api: Api, interval: float = 0.2):
        self.api = api
        self.interval = interval
        self.patched = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="managed-mesh-node", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception as error:  # keep running: a transient API error must not kill the node
                self._error(f"tick: {error}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def tick(self) -> int:
        """One pass over every pod; returns how many statuses were written."""
        written = 0
        now = _now()
        for pod in self.api.list("/api/v1/pods"):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            wanted = desired_status(pod, now)
            if up_to_date(pod, wanted):
                continue
            status, body = self.api.merge_patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                                {"status": wanted})
            if status == 200:
                written += 1
            elif status != 404:  # 404: deleted since the list
                self._error(f"status of {meta['namespace']}/{meta['name']}: {status} {body.get('message', body)}")
        self.patched += written
        return written

    def _error(self, text: str) -> None:
        self.errors = [*self.errors[-9:], text]
