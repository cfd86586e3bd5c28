"""What the cluster holds of the mesh, read with one kubectl call per kind."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from meshops.cluster.backup_store import Backup, sanitized
from meshops.cluster.kube import Kube, in_batches, items
from meshops.cluster.objects import MESH_GROUP, REVISION_LABEL, Kind, is_istio_group, istio_kinds
from meshops.cluster.process import Runner, StepFailed
from meshops.cluster.restorable import MESH_CONFIG_NAME
from meshops.context import StepContext

INJECTION_LABELS = ("istio-injection", "istio.io/rev")
SIDECAR = "istio-proxy"
GATEWAY_TEMPLATE = "inject.istio.io/templates"
"""Pod-template annotation naming the injection template; `gateway` for an injected gateway,
whose istio-proxy container has `image: auto` until the injector fills it in (Istio docs,
"Installing Gateways", gateway injection)."""
INJECTION_STATUS = "sidecar.istio.io/status"
MESH_NAMESPACES = ("istio-system", "asm-system")
# Managed Cloud Service Mesh runs nothing of its own in these namespaces except this one;
# anything else there (an ingress gateway, say) is the user's and is not in the backup.
EXPECTED_WORKLOADS = {("asm-system", "canonical-service-controller-manager")}


def crds(runner: Runner, kube: Kube) -> list[dict]:
    return items(runner, kube.get("customresourcedefinitions"))


def live_objects(runner: Runner, kube: Kube, kinds: list[Kind]) -> dict[str, list[dict]]:
    """Every object of `kinds`, sanitized, by resource; empty kinds included."""
    return {k.resource: sanitized(items(runner, kube.get(k.resource, all_namespaces=k.namespaced))) for k in kinds}


def injection_labels(runner: Runner, kube: Kube) -> dict[str, dict[str, str]]:
    """Namespace -> its injection labels, for namespaces that have any."""
    found = {}
    for ns in items(runner, kube.get("namespaces")):
        labels = (ns.get("metadata") or {}).get("labels") or {}
        picked = {k: v for k, v in labels.items() if k in INJECTION_LABELS}
        if picked:
            found[ns["metadata"]["name"]] = picked
    return found


REVISION_TAG_PREFIX = "istio-revision-tag-"


def tags_of(webhooks: list[dict]) -> dict[str, str]:
    """Revision tag -> revision, from the tag webhooks (`istio-revision-tag-<tag>`, labelled
    istio.io/rev and usually istio.io/tag: Istio docs, "Canary upgrades" with revision tags;
    the managed control plane installs `default` this way)."""
    tags = {}
    for hook in webhooks:
        meta = hook.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = str(meta.get("name", ""))
        if name.startswith(REVISION_TAG_PREFIX) and labels.get("istio.io/rev"):
            tags[labels.get("istio.io/tag") or name[len(REVISION_TAG_PREFIX):]] = labels["istio.io/rev"]
    return dict(sorted(tags.items()))


def revision_tags(runner: Runner, kube: Kube) -> dict[str, str]:
    return tags_of(items(runner, kube.get("mutatingwebhookconfigurations")))


def mesh_configmaps(runner: Runner, kube: Kube) -> list[dict]:
    """The managed revisions' `istio-<revision>` config maps in istio-system (user mesh config):
    exactly the names restore carries over (meshops.cluster.restorable.MESH_CONFIG_NAME);
    any other config map there is archived, never restored."""
    maps = [m for m in items(runner, kube.get("configmaps", namespace="istio-system"))
            if MESH_CONFIG_NAME.fullmatch(str((m.get("metadata") or {}).get("name", "")))]
    return sanitized(maps)


def collect(runner: Runner, kube: Kube, ctx: StepContext, from_channel: str, to_channel: str, run_id: str,
            from_revision: str, stack: str) -> Backup:
    kinds = istio_kinds(crds(runner, kube))
    backup = Backup(ctx.cluster, from_channel, to_channel, run_id, stack=stack, project=ctx.project, location=ctx.location)
    backup.objects = live_objects(runner, kube, kinds)
    backup.namespaces = injection_labels(runner, kube)
    pods = injected_pods(runner, kube)
    backup.injected = dict(sorted(Counter(p["metadata"].get("namespace", "") for p in pods).items()))
    workloads, _ = owners_of(pods, items(runner, kube.get("replicasets", all_namespaces=True)))
    backup.injected_workloads = sorted(f"{w.namespace}/{w.ref}" for w in workloads)
    backup.configmaps = mesh_configmaps(runner, kube)
    backup.revision_tags = revision_tags(runner, kube)
    contents = mesh_namespace_contents(runner, kube)
    if contents.workloads:
        raise StepFailed(workloads_refusal(ctx.cluster, contents.workloads))
    backup.archive = contents.archive
    return backup


@dataclass(frozen=True)
class Workload:
    namespace: str
    ref: str  # kind/name, e.g. deployment/web


def has_sidecar(pod: dict) -> bool:
    """An injected istio-proxy: a gateway's own `image: auto` placeholder does not count."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == SIDECAR and c.get("image") != "auto"
               for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))


def is_gateway(pod: dict) -> bool:
    """A gateway pod: its template asks for the gateway injection template, or the injector
    recorded it used it (the status annotation's `templates`)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if "gateway" in [t.strip() for t in str(annotations.get(GATEWAY_TEMPLATE, "")).split(",")]:
        return True
    try:
        status = json.loads(annotations.get(INJECTION_STATUS) or "{}")
    except ValueError:
        return False
    return isinstance(status, dict) and "gateway" in (status.get("templates") or [])


def injected_pods(runner: Runner, kube: Kube) -> list[dict]:
    return [p for p in items(runner, kube.get("pods", all_namespaces=True)) if has_sidecar(p)]


def owners_of(pods: list[dict], replicasets: list[dict]) -> tuple[set[Workload], list[str]]:
    """Workloads that own `pods` (ReplicaSets resolved to Deployments), and pods with none."""
    rs_owner = {}
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "Deployment":
                rs_owner[(meta.get("namespace"), meta.get("name"))] = f"deployment/{ref.get('name')}"
    workloads, orphans = set(), []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace", "")
        refs = meta.get("ownerReferences") or []
        ref = refs[0] if refs else {}
        if ref.get("kind") == "ReplicaSet" and (ns, ref.get("name")) in rs_owner:
            workloads.add(Workload(ns, rs_owner[(ns, ref.get("name"))]))
        elif ref.get("kind") in ("StatefulSet", "DaemonSet"):
            workloads.add(Workload(ns, f"{ref['kind'].lower()}/{ref.get('name')}"))
        else:
            orphans.append(f"{ns}/{meta.get('name')}")
    return workloads, orphans


TEMPLATE_LABELS = ("spec", "template", "metadata", "labels")


def template_revision(workload: dict) -> str | None:
    """The `istio.io/rev` label of a workload's pod template (Istio chooses a pod's injection by
    its own labels as well as its namespace's: Istio docs, "Installing the sidecar", and
    "Canary upgrades": revision labels on pods), or None."""
    labels: Any = workload
    for key in TEMPLATE_LABELS:
        labels = labels.get(key) if isinstance(labels, dict) else None
    value = (labels or {}).get(REVISION_LABEL) if isinstance(labels, dict) else None
    return str(value) if value else None


def revision_labelled(runner: Runner, kube: Kube, revision: str, tags: dict[str, str]) -> dict[str, str]:
    """namespace/kind/name -> label, for every Deployment, StatefulSet and DaemonSet whose pod
    template is labelled for `revision` (directly, or through a tag that points at it)."""
    found = {}
    for obj in items(runner, kube.get("deployments,statefulsets,daemonsets", all_namespaces=True)):
        label = template_revision(obj)
        if label is not None and (label == revision or tags.get(label) == revision):
            meta = obj.get("metadata") or {}
            found[f"{meta.get('namespace', '')}/{str(obj.get('kind', '')).lower()}/{meta.get('name', '')}"] = label
    return dict(sorted(found.items()))


def template_label_patch(value: str | None) -> dict:
    """The merge patch setting (or, with None, removing) a pod template's istio.io/rev label."""
    return {"spec": {"template": {"metadata": {"labels": {REVISION_LABEL: value}}}}}


def workloads_in(runner: Runner, kube: Kube, namespaces: set[str]) -> set[Workload]:
    """Every Deployment, StatefulSet and DaemonSet in `namespaces`."""
    found = set()
    for obj in items(runner, kube.get("deployments,statefulsets,daemonsets", all_namespaces=True)):
        meta = obj.get("metadata") or {}
        if meta.get("namespace") in namespaces:
            found.add(Workload(meta["namespace"], f"{str(obj.get('kind', '')).lower()}/{meta.get('name')}"))
    return found


def restart(runner: Runner, kube: Kube, workloads: set[Workload]) -> list[str]:
    """`rollout restart` per namespace (in batches that fit an argv); returns what was restarted."""
    by_ns: dict[str, list[str]] = {}
    for w in workloads:
        by_ns.setdefault(w.namespace, []).append(w.ref)
    for ns, refs in sorted(by_ns.items()):
        for batch in in_batches(sorted(refs)):
            runner(kube.restart(ns, batch))
    return sorted(f"{w.namespace}/{w.ref}" for w in workloads)


WORKLOAD_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("apps", "ReplicaSet"),
                  ("batch", "Job"), ("batch", "CronJob"), ("", "Pod"), ("", "ReplicationController")}
"""Kinds that run code: deleting istio-system/asm-system would stop them and no backup holds them."""
CONTROLLED_BY = {"Pod": {"ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"},
                 "ReplicaSet": {"Deployment"}, "Job": {"CronJob"}}
"""A workload that is another workload's doing: its controller is what is checked. Anything
else with an owner (a Deployment owned by a ConfigMap, say) counts as a workload itself."""
DERIVED_KINDS = {("", "Event"), ("events.k8s.io", "Event"), ("", "Endpoints"), ("discovery.k8s.io", "EndpointSlice"),
                 ("coordination.k8s.io", "Lease"), ("apps", "ControllerRevision")}
"""Kinds the cluster writes about other objects; re-made by their controllers, not kept."""
_AUTOMATIC = {("", "ConfigMap", "kube-root-ca.crt"), ("", "ServiceAccount", "default")}
"""Objects Kubernetes itself puts in every namespace."""


@dataclass(frozen=True)
class NamespaceContents:
    workloads: list[str]
    """namespace/kind/name of workloads that are not the managed mesh's own."""
    archive: list[dict]
    """Every other object (sanitized): kept in the backup, never restored automatically."""


def _group_kind(obj: dict) -> tuple[str, str]:
    api_version = str(obj.get("apiVersion", ""))
    return (api_version.rsplit("/", 1)[0] if "/" in api_version else "", str(obj.get("kind", "")))


def mesh_namespace_contents(runner: Runner, kube: Kube) -> NamespaceContents:
    """Everything in istio-system and asm-system that deleting them would delete, of every
    namespaced kind the API serves (`kubectl api-resources`): workloads that are not the
    managed mesh's own are refused, everything else is archived in the backup. Istio objects
    are in the backup proper; mesh.cloud.google.com objects and the cluster's own
    bookkeeping (events, endpoints, leases, owned pods and replica sets) are not kept."""
    resources = [r for r in runner(kube.api_resources()).split() if r and ".metrics.k8s.io" not in r and not r.endswith("metrics.k8s.io")]
    workloads, archive = [], []
    for namespace in MESH_NAMESPACES:
        for obj in items(runner, kube.get(",".join(sorted(resources)), namespace=namespace)):
            group, kind = _group_kind(obj)
            meta = obj.get("metadata") or {}
            name = str(meta.get("name", ""))
            if is_istio_group(group) or group == MESH_GROUP or (group, kind) in DERIVED_KINDS or (group, kind, name) in _AUTOMATIC:
                continue
            if (group, kind) in WORKLOAD_KINDS:
                owned = any(isinstance(o, dict) and o.get("controller") is not False and o.get("kind") in CONTROLLED_BY.get(kind, ())
                            for o in meta.get("ownerReferences") or [])
                if not owned and (namespace, name) not in EXPECTED_WORKLOADS:
                    workloads.append(f"{namespace}/{kind.lower()}/{name}")
                continue
            archive.append(obj)
    return NamespaceContents(sorted(workloads), sanitized(archive))


def workloads_refusal(cluster: str, workloads: list[str]) -> str:
    return (f"cluster {cluster}: the purge would delete {' and '.join(MESH_NAMESPACES)}, destroying {len(workloads)} workloads that "
            f"are not Istio objects and so not in any backup: {', '.join(workloads[:5])}; move them to another namespace first")


def user_workloads(runner: Runner, kube: Kube) -> list[str]:
    """Workloads in istio-system/asm-system that deleting those namespaces would destroy."""
    return mesh_namespace_contents(runner, kube).workloads
