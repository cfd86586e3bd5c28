"""What stays declared inside a cluster: the channel-agnostic injection label on the
namespaces listed in `meshNamespaces`, through a kubernetes Provider for that cluster."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as kubernetes
from pulumi_gcp import container

from components.settings import Cluster
from meshops.context import StepContext
from meshops.kube import kubeconfig_document


def kubeconfig(ctx: StepContext, endpoint: pulumi.Input[str], ca: pulumi.Input[str]) -> pulumi.Output[str]:
    """The same kubeconfig the steps write: the cluster's endpoint and CA, gke-gcloud-auth-plugin."""
    return pulumi.Output.all(endpoint, ca).apply(
        lambda values: json.dumps(kubeconfig_document(ctx, {"endpoint": values[0], "masterAuth": {"clusterCaCertificate": values[1]}})))


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
            live = container.get_cluster_output(name=cluster.name, location=cluster.location, project=cluster.project,
                                                opts=pulumi.InvokeOutputOptions(parent=self))
            endpoint, ca = live.endpoint, live.master_auths.apply(lambda auths: auths[0].cluster_ca_certificate if auths else "")
        self.provider = kubernetes.Provider(f"{cluster.name}-kubernetes", kubeconfig=kubeconfig(ctx, endpoint, ca),
                                            opts=pulumi.ResourceOptions(parent=self))
        for namespace in cluster.mesh_namespaces:
            kubernetes.core.v1.NamespacePatch(
                f"{cluster.name}-{namespace}-injection",
                metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(
                    name=namespace, labels={"istio-injection": "enabled"}, annotations={"pulumi.com/patchForce": "true"}),
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=depends_on, retain_on_delete=True),
            )
        self.register_outputs({})
