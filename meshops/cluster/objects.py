"""Istio custom resources: which kinds exist, and each object in a stable, comparable form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

MESH_GROUP = "mesh.cloud.google.com"
PEER_AUTHENTICATION = "peerauthentications.security.istio.io"
IGNORED_BY_TRAFFIC_DIRECTOR = ("envoyfilters.networking.istio.io", "wasmplugins.extensions.istio.io",
                               "istiooperators.install.istio.io")
"""Kinds the TRAFFIC_DIRECTOR implementation does not support (Cloud Service Mesh docs,
supported features, managed); Kubernetes Ingress too, which is not an Istio kind."""
AUTHORIZATION_POLICY = "authorizationpolicies.security.istio.io"
DESTINATION_RULE = "destinationrules.networking.istio.io"
MESH_PLURALS = ("controlplanerevisions", "dataplanecontrols")
SERVED_ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")
"""The groups of Istio's current APIs (istio.io/api), the CRDs a new control plane installs.
Objects of any other `*.istio.io` group are kept in the backup as archive only: the
pre-1.6 security APIs (authentication.istio.io MeshPolicy/Policy, rbac.istio.io
ServiceRole/ServiceRoleBinding/ClusterRbacConfig: "Istio 1.6 removed support for the
v1alpha1 APIs", istio.io blog "Migrate pre-Istio 1.4 Alpha security policy to the current
APIs", 2021), Mixer's config.istio.io and policy.istio.io, the operator's install.istio.io
(in-cluster installs' state; managed Cloud Service Mesh does not bring its CRD back).
A leftover CRD of one of them would otherwise make restore wait for a kind no channel serves."""


def archive_only(resource: str) -> bool:
    """Whether objects of `resource` (plural.group) are kept but never restored."""
    group = resource.split(".", 1)[1] if "." in resource else ""
    return is_istio_group(group) and group not in SERVED_ISTIO_GROUPS
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers", "generateName")
"""Set by the API server, or meaningful only when creating (generateName: the object has its name)."""
_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


@dataclass(frozen=True)
class Kind:
    """One custom resource kind, as its CRD declares it."""

    crd: str
    group: str
    plural: str
    kind: str
    namespaced: bool
    version: str

    @property
    def resource(self) -> str:
        return f"{self.plural}.{self.group}"


def is_istio_group(group: str) -> bool:
    return group == "istio.io" or group.endswith(".istio.io")


def kind_of_crd(crd: dict) -> Kind:
    spec = crd.get("spec") or {}
    versions = spec.get("versions") or []
    stored = [v.get("name") for v in versions if v.get("storage")] or [v.get("name") for v in versions if v.get("served")]
    names = spec.get("names") or {}
    return Kind(crd=(crd.get("metadata") or {}).get("name", ""), group=spec.get("group", ""), plural=names.get("plural", ""),
                kind=names.get("kind", ""), namespaced=spec.get("scope") == "Namespaced", version=(stored or ["v1"])[0])


def istio_kinds(crds: list[dict]) -> list[Kind]:
    """Every kind in a `*.istio.io` group, discovered from the cluster's CRDs."""
    kinds = [kind_of_crd(c) for c in crds]
    return sorted((k for k in kinds if is_istio_group(k.group)), key=lambda k: k.resource)


def mesh_crds(crds: list[dict]) -> list[str]:
    """CRD names the purge removes: every `*.istio.io` CRD and the two mesh.cloud.google.com ones."""
    names = []
    for crd in crds:
        kind = kind_of_crd(crd)
        if is_istio_group(kind.group) or (kind.group == MESH_GROUP and kind.plural in MESH_PLURALS):
            names.append(kind.crd)
    return sorted(names)


def sanitize(obj: dict) -> dict:
    """The object without what the API server owns, ready for server-side apply."""
    metadata = obj.get("metadata") or {}
    clean_meta: dict = {k: v for k, v in metadata.items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    clean_meta.pop("annotations", None)
    if annotations:
        clean_meta["annotations"] = annotations
    if not clean_meta.get("labels"):
        clean_meta.pop("labels", None)
    clean = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    clean["metadata"] = clean_meta
    return clean


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(obj: dict) -> str:
    """sha256 of the sanitized object's canonical JSON, without its apiVersion: the API
    server returns an object at its CRD's preferred version, so after a channel change that
    brings other Istio CRDs the same object reads back at another version (Istio's versions
    of a kind share one schema). The group stays in the object's resource name."""
    return hashlib.sha256(canonical({k: v for k, v in sanitize(obj).items() if k != "apiVersion"})).hexdigest()


def identity(obj: dict) -> tuple[str, str, str, str]:
    """(apiVersion group, kind, namespace, name): one object whatever its version."""
    metadata = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rsplit("/", 1)[0] if "/" in str(obj.get("apiVersion", "")) else ""
    return group, str(obj.get("kind", "")), str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def merge_patch(target: dict, patch: dict) -> dict:
    """`target` with a JSON merge patch (RFC 7386) applied; neither argument changes."""
    result = json.loads(json.dumps(target))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = json.loads(json.dumps(value))
    return result


IDENTITY_FIELDS = ("principals", "notPrincipals", "namespaces", "notNamespaces")
"""Source fields of an AuthorizationPolicy rule that match the peer's mTLS identity: a request
without mTLS (from a workload whose sidecar is gone) has none, so an ALLOW rule needing one
does not match it (Istio reference, "Authorization Policy": Source.principals and
Source.namespaces are "only available with mutual TLS")."""


def identity_bound_allow(ap: dict) -> bool:
    """An ALLOW policy (the default action) whose every rule needs a peer identity: during
    the move it denies plaintext calls from workloads without a sidecar."""
    spec = ap.get("spec") or {}
    if spec.get("action", "ALLOW") != "ALLOW" or not spec.get("rules"):
        return False
    def needs_identity(rule: dict) -> bool:
        sources = [(f or {}).get("source") or {} for f in (rule or {}).get("from") or []]
        return bool(sources) and all(any(source.get(k) for k in IDENTITY_FIELDS) for source in sources)
    return all(needs_identity(rule) for rule in spec["rules"])


REVISION_LABEL = "istio.io/rev"


def retargeted(obj: dict, from_revision: str, to_revision: str, tags: dict[str, str]) -> dict:
    """`obj` as restore writes it: an `istio.io/rev` label naming the old revision, or a
    revision tag that pointed at it, names the new revision instead. A control plane revision
    skips configuration labelled for another revision (issue "Correct on a real fleet", item
    11, from the review against Istio's revision docs; we did not find the exact page), so
    restored as it was, such an object would silently stop applying."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(REVISION_LABEL)
    if value is None or from_revision == to_revision or (value != from_revision and tags.get(value) != from_revision):
        return obj
    moved = json.loads(json.dumps(obj))
    moved["metadata"]["labels"][REVISION_LABEL] = to_revision
    return moved


def without_mutual_tls(dr: dict) -> dict | None:
    """`dr` with every `tls: {mode: ISTIO_MUTUAL}` taken out (its traffic policy, its port
    settings and its subsets'), or None when it has none. Without a `tls` setting Istio uses
    auto mTLS: mutual TLS to endpoints that still have a sidecar, plaintext to those whose
    sidecar is gone (Istio docs, "Mutual TLS Migration" / auto mTLS; DestinationRule
    reference, ClientTLSSettings). A proxy that keeps running through the move (a gateway)
    would otherwise insist on mTLS towards workloads that lost their sidecar."""
    relaxed = json.loads(json.dumps(dr))
    changed = False

    def strip(policy: dict | None) -> None:
        nonlocal changed
        if not isinstance(policy, dict):
            return
        if (policy.get("tls") or {}).get("mode") == "ISTIO_MUTUAL":
            del policy["tls"]
            changed = True
        for port in policy.get("portLevelSettings") or []:
            if isinstance(port, dict) and (port.get("tls") or {}).get("mode") == "ISTIO_MUTUAL":
                del port["tls"]
                changed = True

    spec = relaxed.get("spec") or {}
    strip(spec.get("trafficPolicy"))
    for subset in spec.get("subsets") or []:
        strip((subset or {}).get("trafficPolicy"))
    return relaxed if changed else None


def permissive_patch(pa: dict) -> dict | None:
    """The merge patch turning a STRICT PeerAuthentication PERMISSIVE, or None if nothing is STRICT."""
    spec = pa.get("spec") or {}
    patch: dict = {}
    if (spec.get("mtls") or {}).get("mode") == "STRICT":
        patch["mtls"] = {"mode": "PERMISSIVE"}
    ports = {port: {"mode": "PERMISSIVE"} for port, value in (spec.get("portLevelMtls") or {}).items()
             if (value or {}).get("mode") == "STRICT"}
    if ports:
        patch["portLevelMtls"] = ports
    return {"spec": patch} if patch else None
