"""kubectl argv builders bound to one cluster's private kubeconfig, and that kubeconfig.

Every kubectl call names `--kubeconfig` explicitly: a step never uses the user's current
context or ~/.kube/config, so a purge cannot hit whatever cluster happens to be current.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from meshops.cluster import gcloud, names
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.context import StepContext

FIELD_MANAGER = "gke-mesh"
PLAN_KUBECONFIG = "<kubeconfig>"
ARGV_BUDGET = 64 * 1024
"""Bytes of names one kubectl argv carries at most: far below Linux's limits on one argument
(MAX_ARG_STRLEN, 128 KiB) and on the whole argv and environment (ARG_MAX, typically 2 MiB),
so a namespace with thousands of objects becomes several calls, not `OSError: [Errno 7]`."""


def in_batches(values: list[str], budget: int = ARGV_BUDGET) -> list[list[str]]:
    """`values` split into runs whose total length stays within `budget` bytes."""
    batches: list[list[str]] = []
    size = budget + 1
    for value in values:
        if size + len(value) + 1 > budget:
            batches.append([])
            size = 0
        batches[-1].append(value)
        size += len(value) + 1
    return batches


@dataclass(frozen=True)
class Kube:
    """Builds kubectl argv for the cluster whose kubeconfig is at `kubeconfig`."""

    kubeconfig: str

    def _base(self) -> list[str]:
        return ["kubectl", f"--kubeconfig={self.kubeconfig}"]

    def _checked(self, check, value: str) -> str:
        """Every value that becomes an argv element passes its Kubernetes syntax check
        (meshops.cluster.names): none can start with `-` and turn into a flag. The offline
        plan's `<placeholders>` are allowed only in the plan's builder."""
        if self.kubeconfig == PLAN_KUBECONFIG and names.PLACEHOLDER.fullmatch(value):
            return value
        return check(value)

    def _scope(self, namespace: str | None) -> list[str]:
        return [f"--namespace={self._checked(names.namespace, namespace)}"] if namespace else []

    def get(self, resource: str, namespace: str | None = None, all_namespaces: bool = False) -> list[str]:
        scope = ["--all-namespaces"] if all_namespaces else self._scope(namespace)
        return [*self._base(), "get", self._checked(names.resource, resource), *scope, "--output=json"]

    def api_resources(self) -> list[str]:
        """Names of every namespaced kind that can be listed and deleted (what a namespace's deletion removes)."""
        return [*self._base(), "api-resources", "--namespaced=true", "--verbs=list,delete", "--output=name"]

    def delete(self, resource: str, names_: list[str], namespace: str | None = None, foreground: bool = False) -> list[str]:
        """`foreground`: kubectl waits until the object's dependents (a DaemonSet's pods) are gone too.
        Callers with many names split them with `in_batches`."""
        cascade = ["--cascade=foreground"] if foreground else []
        return [*self._base(), "delete", self._checked(names.resource, resource),
                *(self._checked(names.object_name, n) for n in names_), *self._scope(namespace), *cascade,
                "--ignore-not-found=true", "--wait=true", "--timeout=300s"]

    def delete_all(self, resource: str, namespace: str | None = None) -> list[str]:
        scope = self._scope(namespace) or ["--all-namespaces"]
        return [*self._base(), "delete", self._checked(names.resource, resource), "--all", *scope, "--ignore-not-found=true",
                "--wait=true", "--timeout=300s"]

    def label_namespace(self, namespace: str, set_labels: dict[str, str], remove: list[str]) -> list[str]:
        """`key=value` and `key-` forms only, each key and value checked: no element can be a flag."""
        changes = [f"{self._checked(names.label_key, k)}={self._checked(names.label_value, v)}" for k, v in sorted(set_labels.items())]
        changes += [f"{self._checked(names.label_key, k)}-" for k in sorted(remove)]
        return [*self._base(), "label", "namespace", self._checked(names.namespace, namespace), *changes, "--overwrite"]

    def restart(self, namespace: str, workloads: list[str]) -> list[str]:
        """`workloads` as kind/name, e.g. deployment/web. Callers with many split them with `in_batches`."""
        return [*self._base(), "rollout", "restart", *sorted(self._checked(names.workload, w) for w in workloads),
                *self._scope(namespace)]

    def merge_patch(self, resource: str, name: str, namespace: str, patch: dict) -> list[str]:
        return [*self._base(), "patch", self._checked(names.resource, resource), self._checked(names.object_name, name),
                *self._scope(namespace), "--type=merge", f"--patch={json.dumps(patch, sort_keys=True, separators=(',', ':'))}"]

    def get_one(self, resource: str, name: str, namespace: str) -> list[str]:
        """One object as JSON; prints nothing when it does not exist."""
        return [*self._base(), "get", self._checked(names.resource, resource), self._checked(names.object_name, name),
                *self._scope(namespace), "--ignore-not-found=true", "--output=json"]

    def apply(self) -> list[str]:
        """Server-side apply of the JSON list given on stdin (no file holds cluster data)."""
        return [*self._base(), "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "--filename=-"]

    def create(self) -> list[str]:
        """Create the object given on stdin; fails if it exists (the record's lock)."""
        return [*self._base(), "create", "--filename=-", "--output=json"]

    def replace(self) -> list[str]:
        """Replace the object given on stdin; its resourceVersion makes a concurrent change fail."""
        return [*self._base(), "replace", "--filename=-", "--output=json"]

    def rollout_status(self, namespace: str, workload: str, timeout_seconds: int) -> list[str]:
        return [*self._base(), "rollout", "status", self._checked(names.workload, workload), *self._scope(namespace),
                f"--timeout={timeout_seconds}s"]


PLAN_KUBE = Kube(PLAN_KUBECONFIG)
"""What the offline plan shows: the kubeconfig is written at run time."""


def kubeconfig_document(ctx: StepContext, described: dict) -> dict:
    """A kubeconfig for one cluster, authenticating through gke-gcloud-auth-plugin."""
    endpoint = described.get("endpoint")
    ca = (described.get("masterAuth") or {}).get("clusterCaCertificate")
    if not endpoint or not ca:
        raise StepFailed(f"cluster {ctx.cluster}: describe returned no endpoint or CA certificate; is the cluster running?")
    name = f"gke-mesh_{ctx.project}_{ctx.location}_{ctx.cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
            "interactiveMode": "Never",
            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
        }}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


@contextmanager
def cluster_access(ctx: StepContext, runner: Runner) -> Iterator[Kube]:
    """A private kubeconfig (mode 0600 in a 0700 temp dir) for the step's duration."""
    described = run_json(runner, gcloud.describe_cluster(ctx))
    if not isinstance(described, dict):
        raise StepFailed(f"cluster {ctx.cluster}: gcloud container clusters describe returned no cluster")
    folder = tempfile.mkdtemp(prefix="gke-mesh-")
    try:
        path = os.path.join(folder, "kubeconfig")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(kubeconfig_document(ctx, described), handle)
        yield Kube(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def items(runner: Runner, argv: list[str]) -> list[dict]:
    """The `items` of a `kubectl get -o json` list."""
    listed = run_json(runner, argv)
    if not isinstance(listed, dict) or not isinstance(listed.get("items", []), list):
        raise StepFailed(f"`{' '.join(argv[2:4])}` returned no list")
    return [i for i in listed.get("items", []) if isinstance(i, dict)]
