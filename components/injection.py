"""What stays declared inside a cluster: the channel-agnostic injection label on the
namespaces listed in `meshNamespaces`, through a kubernetes Provider for that cluster.

The provider and the patches are registered by type name, and the cluster is read through
the `gcp:container/getCluster` invoke, so neither `pulumi_kubernetes`' generated resource
modules nor `pulumi_gcp.container` is loaded (together ~0.5 s of every `pulumi up` and
offline plan). The registrations are the ones the typed classes make (type, name, inputs,
options, plugin version), proved request for request by tests/test_injection_registrations.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_gcp._utilities as gcp_utilities
import pulumi_kubernetes._utilities as kubernetes_utilities  # the package's root only: its resource modules load lazily

from components.settings import Cluster
from meshops.cluster.kube import kubeconfig_document
from meshops.context import StepContext

if TYPE_CHECKING:
    from pulumi_gcp import container

PROVIDER_TYPE = "kubernetes"  # registered as pulumi:providers:kubernetes
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
GET_CLUSTER = "gcp:container/getCluster:getCluster"

# pulumi_kubernetes.Provider's inputs that default to an environment variable (boolean ones
# as JSON text), in the order the class sets them.
_PROVIDER_ENV_BOOLS = (
    ("deleteUnreachable", "PULUMI_K8S_DELETE_UNREACHABLE"),
    ("enableConfigMapMutable", "PULUMI_K8S_ENABLE_CONFIGMAP_MUTABLE"),
    ("enablePatchForce", "PULUMI_K8S_ENABLE_PATCH_FORCE"),
    ("enableSecretMutable", "PULUMI_K8S_ENABLE_SECRET_MUTABLE"),
    ("enableServerSideApply", "PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY"),
    ("skipUpdateUnreachable", "PULUMI_K8S_SKIP_UPDATE_UNREACHABLE"),
    ("suppressDeprecationWarnings", "PULUMI_K8S_SUPPRESS_DEPRECATION_WARNINGS"),
    ("suppressHelmHookWarnings", "PULUMI_K8S_SUPPRESS_HELM_HOOK_WARNINGS"),
    ("upsertExistingObjects", "PULUMI_K8S_UPSERT_EXISTING_OBJECTS"),
)


def kubeconfig(ctx: StepContext, endpoint: pulumi.Input[str], ca: pulumi.Input[str]) -> pulumi.Output[str]:
    """The same kubeconfig the steps write: the cluster's endpoint and CA, gke-gcloud-auth-plugin."""
    return pulumi.Output.all(endpoint, ca).apply(
        lambda values: json.dumps(kubeconfig_document(ctx, {"endpoint": values[0], "masterAuth": {"clusterCaCertificate": values[1]}})))


def _plugin(utilities: Any) -> dict[str, Any]:
    return {"version": utilities.get_version(), "plugin_download_url": utilities.get_plugin_download_url()}


def _json_bool(value: bool | None) -> pulumi.Output[str] | None:
    return None if value is None else pulumi.Output.from_input(value).apply(pulumi.runtime.to_json)


def kubernetes_provider(name: str, kubeconfig_text: pulumi.Input[str], opts: pulumi.ResourceOptions) -> pulumi.ProviderResource:
    """`pulumi_kubernetes.Provider(name, kubeconfig=...)`, registered by type name."""
    props: dict[str, Any] = {
        "alwaysRender": None, "cluster": None, "clusterIdentifier": None, "context": None,
        **{key: _json_bool(kubernetes_utilities.get_env_bool(env)) for key, env in _PROVIDER_ENV_BOOLS[:5]},
        "helmReleaseSettings": None, "kubeClientSettings": None, "kubeconfig": kubeconfig_text,
        "namespace": None, "renderYamlToDirectory": None,
        **{key: _json_bool(kubernetes_utilities.get_env_bool(env)) for key, env in _PROVIDER_ENV_BOOLS[5:]},
    }
    opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(**_plugin(kubernetes_utilities)), opts)
    return pulumi.ProviderResource(PROVIDER_TYPE, name, props, opts)


def namespace_patch(name: str, metadata: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """`pulumi_kubernetes.core.v1.NamespacePatch(name, metadata=...)`, registered by type name."""
    props = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata, "spec": None, "status": None}
    opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(**_plugin(kubernetes_utilities)), opts)
    return pulumi.CustomResource(NAMESPACE_PATCH, name, props, opts)


def live_cluster(cluster: Cluster, parent: pulumi.Resource) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """Endpoint and CA of an existing cluster: `container.get_cluster_output(...)` as an invoke by token."""
    args = {"location": cluster.location, "name": cluster.name, "project": cluster.project, "skipNodePoolRefresh": None}
    opts = pulumi.InvokeOutputOptions.merge(pulumi.InvokeOutputOptions(**_plugin(gcp_utilities)), pulumi.InvokeOutputOptions(parent=parent))
    live = pulumi.runtime.invoke_output(GET_CLUSTER, args, opts=opts)
    endpoint = live.apply(lambda result: (result or {}).get("endpoint"))
    ca = live.apply(lambda result: ((result or {}).get("masterAuths") or [{}])[0].get("clusterCaCertificate", ""))
    return endpoint, ca


class MeshNamespaces(pulumi.ComponentResource):
    """`istio-injection=enabled` (never `istio.io/rev`: it names a channel's revision) on
    each namespace, as server-side-apply patches ordered after the control plane is ready.
    `retain_on_delete`: destroying the stack must not strip the label, or the next
    restart would drop the sidecars."""

    def __init__(self, name: str, cluster: Cluster, ctx: StepContext, depends_on: list[pulumi.Resource],
                 created: container.Cluster | None = None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:injection:MeshNamespaces", name, None, opts)
        if created is not None:
            endpoint, ca = created.endpoint, created.master_auth.cluster_ca_certificate
        else:
            endpoint, ca = live_cluster(cluster, self)
        self.provider = kubernetes_provider(f"{cluster.name}-kubernetes", kubeconfig(ctx, endpoint, ca),
                                            pulumi.ResourceOptions(parent=self))
        for namespace in cluster.mesh_namespaces:
            namespace_patch(
                f"{cluster.name}-{namespace}-injection",
                {"name": namespace, "labels": {"istio-injection": "enabled"}, "annotations": {"pulumi.com/patchForce": "true"}},
                pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=depends_on, retain_on_delete=True),
            )
        self.register_outputs({})
