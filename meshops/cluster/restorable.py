"""What a mesh backup may put back into a cluster, checked at restore time.

A backup is written by the backup step, but it is read from a bucket, through a reference
that may have come from a record: restore re-checks what it is about to apply instead of
trusting how it was made. It applies only
- objects of `*.istio.io` kinds the cluster serves, each of that kind, with metadata that
  is a name, a namespace, labels and annotations of valid syntax, and a `spec`;
- the `istio-system` mesh config maps the backup step saves (the revision's
  `istio-<revision>` / `istio-asm-managed*` mesh configuration), with data only;
- namespaces they live in, created by name only.
Anything else (a ClusterRoleBinding, a Secret, an object of another kind under an Istio
resource's key, an ownerReference or a finalizer) refuses the whole restore in one line
before anything is applied. The backup step runs the same checks on what it collected,
before anything changes: what restore would refuse must never be found only after the purge.
"""

from __future__ import annotations

import re
from typing import Any

from meshops.cluster import names
from meshops.cluster.objects import is_istio_group
from meshops.cluster.process import StepFailed

ISTIO_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec"}
CONFIGMAP_TOP_LEVEL = {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}
METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}
MESH_CONFIG_NAMESPACE = "istio-system"
MESH_CONFIG_NAME = re.compile(r"istio-asm-managed(-rapid|-stable)?|asm-options")
"""The config maps restore applies: the managed revisions' mesh config (`istio-<revision>`)
and `asm-options`, which holds `multicluster_mode` (Cloud Service Mesh, "Configure managed
Cloud Service Mesh" / modernization configuration): without it, a re-provisioned control plane
stops discovering the other clusters' endpoints."""


class NotRestorable(StepFailed):
    """What restore refuses to apply (`what`), found in the backup at `where`."""

    def __init__(self, what: str, where: str):
        super().__init__(f"backup at {where} holds {what}, which a mesh backup never holds; refusing to apply any of it "
                         "(someone may have written to the bucket: check the backup before using it)")
        self.what = what


def _problem(what: str, where: str) -> NotRestorable:
    return NotRestorable(what, where)


def _check_metadata(obj: dict, namespaced: bool, where: str) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or set(meta) - METADATA_FIELDS:
        extra = sorted(set(meta) - METADATA_FIELDS) if isinstance(meta, dict) else ["(not an object)"]
        raise _problem(f"an object with metadata {', '.join(map(str, extra))[:120]}", where)
    try:
        names.object_name(meta.get("name"))
        if namespaced:
            names.namespace(meta.get("namespace"))
        elif meta.get("namespace"):
            raise StepFailed("a namespace on a cluster-scoped object")
        for key, value in (meta.get("labels") or {}).items():
            names.label_key(key)
            names.label_value(value)
        for key, value in (meta.get("annotations") or {}).items():
            names.label_key(key)
            if not isinstance(value, str):
                raise StepFailed(f"annotation {key} is not a string")
    except (StepFailed, AttributeError) as error:
        raise _problem(f"an object with invalid metadata ({str(error)[:160]})", where) from None


def check_istio_objects(objects: dict[str, list[dict]], kinds: dict[str, Any], where: str) -> None:
    """Every backed-up object restore would apply: an Istio resource, each object of that kind."""
    for resource, objs in objects.items():
        group = resource.split(".", 1)[1] if "." in resource else ""
        if not is_istio_group(group):
            raise _problem(f"objects of {resource[:80]!r}, not an Istio kind", where)
        kind = kinds.get(resource)
        if kind is None:
            continue  # not served here: never applied (restore names it)
        for obj in objs:
            if not isinstance(obj, dict) or set(obj) - ISTIO_TOP_LEVEL:
                raise _problem(f"a {resource} object with fields {sorted(set(obj) - ISTIO_TOP_LEVEL)[:5]}", where)
            if obj.get("kind") != kind.kind:
                raise _problem(f"a {str(obj.get('kind'))[:60]!r} object among the {resource} objects", where)
            if not isinstance(obj.get("spec", {}), dict):
                raise _problem(f"a {resource} object whose spec is not an object", where)
            _check_metadata(obj, kind.namespaced, where)


def check_configmaps(configmaps: list[dict], where: str) -> None:
    """The mesh config maps restore carries over: istio-system's managed mesh configuration only."""
    for cm in configmaps:
        meta = cm.get("metadata") if isinstance(cm, dict) else None
        name = (meta or {}).get("name") if isinstance(meta, dict) else None
        if not isinstance(cm, dict) or cm.get("kind") != "ConfigMap" or cm.get("apiVersion") != "v1" \
                or set(cm) - CONFIGMAP_TOP_LEVEL or not isinstance(name, str) or not MESH_CONFIG_NAME.fullmatch(name) \
                or (meta or {}).get("namespace") != MESH_CONFIG_NAMESPACE:
            shown = f"{(meta or {}).get('namespace')}/{name}" if isinstance(meta, dict) else "?"
            raise _problem(f"a config map {shown[:120]!r} that is not an {MESH_CONFIG_NAMESPACE} mesh config map", where)
        if not all(isinstance(v, str) for v in (cm.get("data") or {}).values()):
            raise _problem(f"config map {name} with non-text data", where)
        _check_metadata(cm, True, where)
