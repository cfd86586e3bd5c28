"""The in-cluster objects of Google's managed control plane for one revision.

The set is tests/fake_world.py's FakeCluster.install_control_plane (the cluster of the June
2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順'; Cloud
Service Mesh docs, "Uninstall Cloud Service Mesh" and managed release channels), written to
the real API server. What
the fake leaves empty is filled in from these sources:

- Mutating webhooks (the injector). Istio's chart, istio/istio
  manifests/charts/istio-control/istio-discovery/templates/revision-tags-mwc.yaml (read at
  commit 543a3cfd): every injection webhook matches Pod CREATE with failurePolicy Fail,
  sideEffects None, and comes in the entries `rev.namespace.` (namespace label
  istio.io/rev = the revision or tag, no istio-injection label), `rev.object.` (pod label
  istio.io/rev, namespace without either label) and, for the tag `default` only,
  `namespace.` (namespace istio-injection=enabled) and `object.` (pod label
  sidecar.istio.io/inject=true); every entry except `object.` excludes pods labelled
  sidecar.istio.io/inject=false. Revisioned webhooks: the same chart's
  mutatingwebhook.yaml also uses failurePolicy Fail.
  `istiod-<rev>` carries the revision's `rev.*` entries (the name as seen on managed clusters:
  practitioners' reports, no public source found; its selectors follow the chart's revision
  case). `istio-revision-tag-default` carries the
  tag's four entries, pointing at the revision. `istio-sidecar-injector` exists but is
  deactivated: while a `default` tag exists Istio gives the default injector's entries the
  selector `istio.io/deactivated: never-match` (istio/istio operator/pkg/util NeverMatch;
  istioctl tag set default), so only the tag injects `istio-injection=enabled` namespaces,
  which is fake_world.injection_for()'s rule.
- Validating webhooks: the chart's validatingwebhookconfiguration.yaml (commit b8442325):
  CREATE/UPDATE of security.istio.io / networking.istio.io (and telemetry.istio.io for
  the default entry), entry `rev.validation.istio.io` for objects labelled with the
  revision, `validation.istio.io` for unlabelled objects. The chart ships failurePolicy
  Ignore and istiod's webhook controller switches it to Fail once the webhook serves; a
  running managed control plane is in that second state, so Fail here.
- ControlPlaneRevision: mesh.cloud.google.com/v1beta1, namespaced, in istio-system,
  spec.type managed_service and spec.channel (namespace and revision names: "Uninstall Cloud
  Service Mesh" and the managed release channels page; the spec fields as seen on managed
  clusters, no public Google page found). DataPlaneControl:
  cluster-scoped (fake_world's MESH_KINDS). Their CRDs are ours: Google publishes no schema,
  so both accept any fields (x-kubernetes-preserve-unknown-fields) and serve only v1beta1,
  the version seen on managed clusters (no source for others).
- kube-system: Deployment mdp-controller (1 replica), DaemonSet istio-cni-node, ConfigMap
  istio-cni-plugin-config ("Uninstall Cloud Service Mesh"; images and CNI config: no source,
  chosen here). There are no nodes, so the DaemonSet has no pods.
- ClusterRoles/bindings istiod-istio-system and istio-reader-istio-system (the 2025 write-up's
  `istioctl uninstall --purge` output; rules: a minimal read-only set, no source).
- ConfigMap istio-<rev> in istio-system, the mesh config (Cloud Service Mesh docs, "Configure
  managed Cloud Service Mesh"); created only when absent, since users edit it (e.g. its
  accessLogFile).
- Istio CRDs: the KubeServer's selected Istio set, applied over what is there (Cloud Service
  Mesh docs, "Provision a managed Cloud Service Mesh control plane on GKE": the in-cluster
  components, Istio CRDs included, follow the cluster's current channel).
"""

from __future__ import annotations

import base64

from testbed.managed_mesh.injector import PROXY_VERSIONS

MESH_GROUP = "mesh.cloud.google.com"
MESH_CRDS = (f"controlplanerevisions.{MESH_GROUP}", f"dataplanecontrols.{MESH_GROUP}")
MUTATING = ("istiod-{rev}", "istio-revision-tag-default", "istio-sidecar-injector")
VALIDATING = ("istiod-istio-system-mcp", "istio-validator-istio-system")
NEVER_MATCH = {"matchLabels": {"istio.io/deactivated": "never-match"}}
NOT_OPTED_OUT = {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}


def channel_of(revision: str) -> str:
    """Managed release channels page: asm-managed is regular, asm-managed-<channel> otherwise."""
    if revision not in PROXY_VERSIONS:
        raise ValueError(f"unknown managed revision {revision!r}; expected one of {sorted(PROXY_VERSIONS)}")
    return {"asm-managed": "regular"}.get(revision, revision.removeprefix("asm-managed-"))


def mesh_crd(plural: str, kind: str, namespaced: bool) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{MESH_GROUP}"},
            "spec": {"group": MESH_GROUP, "scope": "Namespaced" if namespaced else "Cluster",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def mesh_crds() -> list[dict]:
    return [mesh_crd("controlplanerevisions", "ControlPlaneRevision", True), mesh_crd("dataplanecontrols", "DataPlaneControl", False)]


def _selector(*expressions: dict) -> dict:
    return {"matchExpressions": list(expressions)}


def _has(key: str, *values: str) -> dict:
    return {"key": key, "operator": "In", "values": list(values)}


def _lacks(key: str) -> dict:
    return {"key": key, "operator": "DoesNotExist"}


def _inject_entry(prefix: str, url: str, ca: str, namespaces: dict, objects: dict) -> dict:
    return {"name": f"{prefix}sidecar-injector.istio.io", "clientConfig": {"url": url, "caBundle": ca},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "reinvocationPolicy": "Never", "timeoutSeconds": 10, "matchPolicy": "Equivalent",
            "namespaceSelector": namespaces, "objectSelector": objects}


def _rev_entries(selected: str, url: str, ca: str) -> list[dict]:
    """rev.namespace. and rev.object. for a revision or tag name `selected`."""
    return [_inject_entry("rev.namespace.", url, ca, _selector(_has("istio.io/rev", selected), _lacks("istio-injection")),
                          _selector(NOT_OPTED_OUT)),
            _inject_entry("rev.object.", url, ca, _selector(_lacks("istio.io/rev"), _lacks("istio-injection")),
                          _selector(NOT_OPTED_OUT, _has("istio.io/rev", selected)))]


def _default_entries(url: str, ca: str) -> list[dict]:
    return [*_rev_entries("default", url, ca),
            _inject_entry("namespace.", url, ca, _selector(_has("istio-injection", "enabled")), _selector(NOT_OPTED_OUT)),
            _inject_entry("object.", url, ca, _selector(_lacks("istio-injection"), _lacks("istio.io/rev")),
                          _selector(_has("sidecar.istio.io/inject", "true"), _lacks("istio.io/rev")))]


def mutating_webhooks(revision: str, base_url: str, ca_pem: bytes) -> list[dict]:
    url, ca = f"{base_url}/inject/{revision}", base64.b64encode(ca_pem).decode()
    labels = {"istio.io/rev": revision, "app": "sidecar-injector"}

    def config(name: str, webhooks: list[dict], extra: dict | None = None) -> dict:
        return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": name, "labels": {**labels, **(extra or {})}}, "webhooks": webhooks}

    deactivated = [{**entry, "namespaceSelector": NEVER_MATCH, "objectSelector": NEVER_MATCH} for entry in _default_entries(url, ca)]
    return [config(f"istiod-{revision}", _rev_entries(revision, url, ca)),
            config("istio-revision-tag-default", _default_entries(url, ca), {"istio.io/tag": "default"}),
            config("istio-sidecar-injector", deactivated)]


def validating_webhooks(revision: str, base_url: str, ca_pem: bytes) -> list[dict]:
    url, ca = f"{base_url}/validate", base64.b64encode(ca_pem).decode()

    def entry(name: str, groups: list[str], objects: dict) -> dict:
        return {"name": name, "clientConfig": {"url": url, "caBundle": ca},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": groups, "apiVersions": ["*"], "resources": ["*"]}],
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 10,
                "objectSelector": objects}

    groups = ["security.istio.io", "networking.istio.io"]
    hooks = [entry("rev.validation.istio.io", groups, _selector(_has("istio.io/rev", revision))),
             entry("validation.istio.io", [*groups, "telemetry.istio.io"], _selector(_lacks("istio.io/rev")))]
    return [{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": name, "labels": {"app": "istiod", "istio": "istiod", "istio.io/rev": revision}},
             "webhooks": hooks} for name in VALIDATING]


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def objects(revision: str, base_url: str, ca_pem: bytes) -> list[dict]:
    """Everything but the CRDs and the mesh config map, in the order to apply them."""
    channel, version = channel_of(revision), PROXY_VERSIONS[revision]
    app = {"app": "mdp-controller"}
    cni = {"k8s-app": "istio-cni-node"}
    found = [_namespace("istio-system"), _namespace("asm-system"),
             {"apiVersion": f"{MESH_GROUP}/v1beta1", "kind": "ControlPlaneRevision",
              "metadata": {"name": revision, "namespace": "istio-system", "labels": {"istio.io/rev": revision}},
              "spec": {"type": "managed_service", "channel": channel}},
             {"apiVersion": f"{MESH_GROUP}/v1beta1", "kind": "DataPlaneControl",
              "metadata": {"name": "asm-managed"}, "spec": {"revision": revision}},
             *mutating_webhooks(revision, base_url, ca_pem), *validating_webhooks(revision, base_url, ca_pem),
             {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mdp-controller", "namespace": "kube-system"},
              "spec": {"replicas": 1, "selector": {"matchLabels": app}, "template": {"metadata": {"labels": app}, "spec": {
                  "containers": [{"name": "mdp-controller", "image": f"gcr.io/gke-release/asm/mdp:{version}",
                                  "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}}]}}}},
             {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "istio-cni-node", "namespace": "kube-system"},
              "spec": {"selector": {"matchLabels": cni}, "template": {"metadata": {"labels": cni}, "spec": {
                  "containers": [{"name": "install-cni", "image": f"gcr.io/gke-release/asm/install-cni:{version}",
                                  "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}}}},
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-cni-plugin-config", "namespace": "kube-system"},
              "data": {"cni": '{"type": "istio-cni", "log_level": "info"}'}}]
    readers = [{"apiGroups": [""], "resources": ["pods", "services", "namespaces", "endpoints"], "verbs": ["get", "list", "watch"]}]
    for name, account in (("istiod-istio-system", "istiod"), ("istio-reader-istio-system", "istio-reader-service-account")):
        found.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": readers})
        found.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                      "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "istio-system"}]})
    return found


def mesh_config(revision: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"istio-{revision}", "namespace": "istio-system"},
            "data": {"mesh": ""}}
