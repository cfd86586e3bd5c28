"""A small REST client for the KubeServer, safe to use from several threads.

kube.request() sends only application/json; the managed mesh also needs server-side apply
(application/apply-patch+yaml: JSON is YAML) and merge patches of the pod status
subresource, so this client builds its own requests, with the same admin token and CA.
Server-side apply with force is what makes provision() idempotent (Kubernetes docs,
"Server-Side Apply": an apply with force=true takes over conflicting fields).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from testbed.kube_server import DEFAULT_TOKEN, KubeServer

FIELD_MANAGER = "gke-mesh-testbed-managed-mesh"

# kind -> (API path prefix, plural, namespaced), for the kinds the managed mesh writes.
RESOURCES = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", False),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ControlPlaneRevision": ("/apis/mesh.cloud.google.com/v1beta1", "controlplanerevisions", True),
    "DataPlaneControl": ("/apis/mesh.cloud.google.com/v1beta1", "dataplanecontrols", False),
}


class ApiError(RuntimeError):
    pass


def object_path(obj: dict) -> str:
    prefix, plural, namespaced = RESOURCES[obj["kind"]]
    meta = obj["metadata"]
    scope = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{scope}/{plural}/{meta['name']}"


class Api:
    def __init__(self, kube: KubeServer, timeout: float = 15):
        self.base = kube.url
        self.context = ssl.create_default_context(cafile=str(kube.ca_file))
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, content_type: str = "application/json",
             retries: int = 20) -> tuple[int, dict]:
        """(status, decoded body). 429 (a CRD's storage just after it is Established) is retried,
        as client-go does."""
        data = json.dumps(body).encode() if body is not None else None
        for _ in range(retries + 1):
            request = urllib.request.Request(self.base + path, data=data, method=method, headers={
                "Authorization": f"Bearer {DEFAULT_TOKEN}", "Content-Type": content_type, "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=self.timeout) as response:
                    raw, status = response.read(), response.status
            except urllib.error.HTTPError as error:
                raw, status = error.read(), error.code
            if status != 429:
                break
            time.sleep(0.1)
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"raw": raw[:500].decode(errors="replace")}

    def get(self, path: str) -> dict | None:
        status, body = self.call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise ApiError(f"GET {path}: {status} {body}")
        return body

    def list(self, path: str) -> list[dict]:
        found = self.get(path)
        return (found or {}).get("items") or []

    def apply(self, obj: dict) -> dict:
        """Server-side apply (create or update) of one object."""
        query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
        path = f"{object_path(obj)}?{query}"
        status, body = self.call("PATCH", path, obj, content_type="application/apply-patch+yaml")
        if status not in (200, 201):
            raise ApiError(f"apply {obj['kind']} {obj['metadata'].get('name')}: {status} {body}")
        return body

    def create_if_absent(self, obj: dict) -> None:
        """POST; an existing object (maybe edited by the user since) is left as it is."""
        prefix, plural, namespaced = RESOURCES[obj["kind"]]
        scope = f"/namespaces/{obj['metadata']['namespace']}" if namespaced else ""
        status, body = self.call("POST", f"{prefix}{scope}/{plural}", obj)
        if status not in (200, 201, 409):
            raise ApiError(f"create {obj['kind']} {obj['metadata'].get('name')}: {status} {body}")

    def merge_patch(self, path: str, patch: dict) -> tuple[int, dict]:
        return self.call("PATCH", path, patch, content_type="application/merge-patch+json", retries=0)
