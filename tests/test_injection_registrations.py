"""components/injection.py registers the kubernetes provider and the namespace patches by
type name and reads the cluster through an invoke by token, so that the typed
`pulumi_kubernetes` and `pulumi_gcp.container` modules never load. This proves the engine
receives exactly what the typed classes send: every RegisterResource and Invoke request of
the program (type, name, parent, inputs, dependencies, provider, plugin version, options),
with the typed implementation it replaced (kept below) and with the current one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from google.protobuf import json_format

from components import injection
from meshops.review.offline import EchoMocks, RecordingMonitor, run_program, stack_config
from tests.conftest import ROOT, minimal_config

# Per-call facts that say where in the source a request was made, not what it asks for.
_WHERE = {"sourcePosition", "stackTrace", "parentStackTraceHandle"}


def _unordered(value):
    """Dependency lists as sets: the SDK gathers them concurrently, in no fixed order."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("dependencies", "urns") else _unordered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unordered(v) for v in value]
    return value


class RequestMonitor(RecordingMonitor):
    """Keeps the raw requests the SDK sent."""

    def __init__(self, answers):
        super().__init__(answers)
        self.requests: list[dict] = []

    def _keep(self, kind: str, request) -> None:
        body = json_format.MessageToDict(request, preserving_proto_field_name=True)
        self.requests.append(_unordered({"kind": kind, **{k: v for k, v in body.items() if k not in _WHERE}}))

    def RegisterResource(self, request):
        self._keep("register", request)
        return super().RegisterResource(request)

    def Invoke(self, request):
        self._keep("invoke", request)
        return super().Invoke(request)


class TypedMeshNamespaces:
    """The implementation before registration by type name (pulumi_kubernetes and
    pulumi_gcp.container classes), verbatim but for the imports."""

    def __new__(cls, name, cluster, ctx, depends_on, created=None, opts=None):
        import pulumi
        import pulumi_kubernetes as kubernetes
        from pulumi_gcp import container

        class MeshNamespaces(pulumi.ComponentResource):
            def __init__(self):
                super().__init__("gke-mesh:injection:MeshNamespaces", name, None, opts)
                if created is not None:
                    endpoint, ca = created.endpoint, created.master_auth.cluster_ca_certificate
                else:
                    live = container.get_cluster_output(name=cluster.name, location=cluster.location, project=cluster.project,
                                                        opts=pulumi.InvokeOutputOptions(parent=self))
                    endpoint, ca = live.endpoint, live.master_auths.apply(lambda auths: auths[0].cluster_ca_certificate if auths else "")
                self.provider = kubernetes.Provider(f"{cluster.name}-kubernetes", kubeconfig=injection.kubeconfig(ctx, endpoint, ca),
                                                    opts=pulumi.ResourceOptions(parent=self))
                for namespace in cluster.mesh_namespaces:
                    kubernetes.core.v1.NamespacePatch(
                        f"{cluster.name}-{namespace}-injection",
                        metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(
                            name=namespace, labels={"istio-injection": "enabled"}, annotations={"pulumi.com/patchForce": "true"}),
                        opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=depends_on, retain_on_delete=True),
                    )
                self.register_outputs({})

        return MeshNamespaces()


CONFIG = minimal_config(**{"gke-mesh:clusters": [
    {"name": "adopted", "location": "asia-northeast1", "meshNamespaces": ["shop", "shop-gateway"]},
    {"name": "owned", "location": "europe-west4-b", "mode": "create", "meshNamespaces": ["api"]},
    {"name": "unmigrated", "location": "us-central1", "meshNamespaces": ["web"], "migration": {"enabled": False}},
]})


def cluster_outputs(args) -> dict:
    """What the cloud answers for an owned cluster once it exists (`up`)."""
    if args.typ == "gcp:container/cluster:Cluster":
        return {"endpoint": "203.0.113.7", "masterAuth": {"clusterCaCertificate": "Y2E="}}
    return {}


def requests_of(implementation, preview: bool) -> list[dict]:
    monitor = RequestMonitor(EchoMocks(extra_outputs=cluster_outputs))
    original = injection.MeshNamespaces
    injection.MeshNamespaces = implementation
    try:
        run_program(stack_config(CONFIG), "test", monitor=monitor, preview=preview)
    finally:
        injection.MeshNamespaces = original
    return sorted(monitor.requests, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
@pytest.mark.parametrize("env", [{}, {"PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY": "true", "PULUMI_K8S_DELETE_UNREACHABLE": "0"}],
                         ids=["no-env", "provider-env"])
def test_registrations_by_type_name_equal_the_typed_classes(preview, env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    typed, by_name = requests_of(TypedMeshNamespaces, preview), requests_of(injection.MeshNamespaces, preview)
    ours = [r for r in by_name if "kubernetes" in r.get("type", "") or r.get("tok") == injection.GET_CLUSTER]
    assert {r.get("type") or r.get("tok") for r in ours} == {
        "pulumi:providers:kubernetes", injection.NAMESPACE_PATCH, injection.GET_CLUSTER}
    assert all(r.get("version") for r in ours), "every request names its plugin version"
    assert by_name == typed


def test_the_plan_loads_neither_pulumi_kubernetes_resources_nor_pulumi_gcp_container():
    probe = ("import sys; from meshops.review.plan import build_plan; from pathlib import Path; "
             "build_plan(Path('Pulumi.dev.yaml')); "
             "print(sorted(m for m, module in sys.modules.items() if m.startswith(('pulumi_kubernetes.', 'pulumi_gcp.container'))"
             " and type(module).__name__ != '_LazyModule'))")  # a lazy module is a name, not yet run
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    loaded = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's list of names
    # The package root (its provider class and its inputs, ~5 ms); not one resource module.
    assert loaded == ["pulumi_kubernetes._inputs", "pulumi_kubernetes._utilities", "pulumi_kubernetes.provider"], loaded
