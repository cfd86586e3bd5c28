"""testbed/managed_mesh (Google's managed control plane and a node, inside the testbed's real
kube-apiserver) against the project's own kubectl calls.

One KubeServer (etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, Istio 1.32
CRDs) and one ManagedMesh for the module. The API server itself decides which pods the
injector sees, from the webhook configurations' selectors; the node thread reports pods
Running/Ready so the real ReplicaSet and Deployment controllers count them and
`kubectl rollout status` ends. Every kubectl call goes through meshops (Kube argv,
process.run via tests/test_kube_real.Real), the purge through meshops.steps.purge.

Needs the kube testbed build (`bash testbed/build_kube.sh`); skipped with the reason
otherwise. Run with `pytest -m e2e tests/test_managed_mesh_real.py`. The tests share the
server and run in file order; each provisions what it needs first. Timings are printed at
the end of the module (pytest's terminal summary).
"""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest

from meshops.cluster.inventory import Workload, crds, has_sidecar, restart
from meshops.cluster.kube import items
from meshops.cluster.objects import mesh_crds
from meshops.cluster.process import StepFailed
from meshops.steps import purge
from meshops.steps.reinject import relabel
from testbed.managed_mesh import ManagedMesh
from testbed.managed_mesh.control_plane import MESH_CRDS
from testbed.managed_mesh.injector import proxy_image
from tests.test_kube_real import Real, as_list, namespace, peer_authentication, real_server

pytestmark = pytest.mark.e2e

RAPID, REGULAR = "asm-managed-rapid", "asm-managed"
REAPPEAR_SECONDS = 1.0  # the field's "~30 s", scaled down
# The purge's 30 s pause, scaled by 1/5: longer than the reappearance delay plus the ~2.5 s a
# re-creation takes here, so a round never deletes CRDs while they are being re-created.
PAUSE_SECONDS = purge.RECHECK_SECONDS / 5
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def real():
    """Its own server: ManagedMesh leaves webhooks (failurePolicy Fail) behind when it stops."""
    with real_server() as server:
        yield server


@pytest.fixture(scope="module")
def mesh(real, request):
    with ManagedMesh(real.server, reappear_delay=REAPPEAR_SECONDS) as managed:
        yield managed
        assert managed.errors == []
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter and TIMINGS:
        reporter.write_line("managed mesh timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in TIMINGS.items()))


# --------------------------------------------------------------------------- helpers
def deployment(ns: str, name: str, replicas: int = 2, *, containers: list[dict] | None = None,
               annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
    template_meta: dict = {"labels": {"app": name, **(labels or {})}}
    if annotations:
        template_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": template_meta,
                                  "spec": {"containers": containers or [{"name": "app", "image": "registry.invalid/app:1"}]}}}}


def live_pods(real: Real, ns: str, app: str | None = None) -> list[dict]:
    return [p for p in items(real.run, real.kube.get("pods", namespace=ns))
            if not p["metadata"].get("deletionTimestamp") and (app is None or p["metadata"]["labels"].get("app") == app)]


def sidecar_images(pod: dict) -> list[str]:
    return [c["image"] for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"]


def injected_by(pod: dict) -> str | None:
    status = (pod["metadata"].get("annotations") or {}).get("sidecar.istio.io/status")
    return json.loads(status)["revision"] if status else None


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def rollout(real: Real, ns: str, name: str, timeout: int = 60) -> float:
    """The project's `kubectl rollout status`; seconds it took."""
    began = time.monotonic()
    out = real.run(real.kube.rollout_status(ns, f"deployment/{name}", timeout))
    assert out.splitlines()[-1] == f'deployment "{name}" successfully rolled out'
    return time.monotonic() - began


def restart_and_wait(real: Real, ns: str, name: str) -> list[dict]:
    """inventory.restart (the steps' `kubectl rollout restart`), rollout status, the new pods."""
    restart(real.run, real.kube, {Workload(ns, f"deployment/{name}")})
    rollout(real, ns, name)
    return live_pods(real, ns, name)


def wait_for(what: Callable[[], object], timeout: float = 30, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {getattr(what, '__name__', what)}")
        time.sleep(every)


def istio_webhooks(real: Real) -> dict[str, list[str]]:
    return {kind: sorted(w["metadata"]["name"] for w in items(real.run, real.kube.get(kind)) if purge.is_istio_webhook(w))
            for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")}


def present_mesh_crds(real: Real) -> list[str]:
    return mesh_crds(crds(real.run, real.kube))


# =========================================================================== tests
def test_revision_label_injects_and_the_rollout_completes(real, mesh):
    began = time.monotonic()
    mesh.provision(RAPID)
    TIMINGS["provision"] = time.monotonic() - began
    assert mesh.installed_revision() == RAPID
    assert istio_webhooks(real) == {
        "mutatingwebhookconfigurations": sorted([f"istiod-{RAPID}", "istio-revision-tag-default", "istio-sidecar-injector"]),
        "validatingwebhookconfigurations": ["istio-validator-istio-system", "istiod-istio-system-mcp"]}

    ns = "rev-labelled"
    began = time.monotonic()
    real.run(real.kube.apply(), input=as_list(namespace(ns, {"istio.io/rev": RAPID}), deployment(ns, "web", 3)))
    rollout(real, ns, "web")
    TIMINGS["apply-to-rolled-out"] = time.monotonic() - began

    pods = live_pods(real, ns)
    assert len(pods) == 3
    for pod in pods:
        assert [c["name"] for c in pod["spec"]["containers"]] == ["app", "istio-proxy"]
        assert sidecar_images(pod) == ["gcr.io/gke-release/asm/proxyv2:1.22.1-asm.1"]
        assert injected_by(pod) == RAPID and has_sidecar(pod)
        assert pod["status"]["phase"] == "Running" and ready(pod)
        assert [s["ready"] for s in pod["status"]["containerStatuses"]] == [True, True]
        assert not pod["spec"].get("nodeName")  # the API server takes a Running status without a node
    assert mesh.injected_pods(RAPID) >= 3
    web = json.loads(real.run(real.kube.get_one("deployment", "web", ns)))
    assert web["status"]["availableReplicas"] == web["status"]["readyReplicas"] == 3
    assert mesh.injector_calls()[f"inject/{RAPID}"] >= 3

    # mdp-controller runs too (the node reports every pod); the CNI DaemonSet has no node to run on.
    assert rollout(real, "kube-system", "mdp-controller") < 30
    provision_again = time.monotonic()
    mesh.provision(RAPID)  # idempotent: server-side apply over what is there
    TIMINGS["provision-again"] = time.monotonic() - provision_again
    assert mesh.installed_revision() == RAPID


def test_istio_injection_enabled_is_served_by_the_default_tag(real, mesh):
    mesh.provision(RAPID)
    ns = "tag-injected"
    opted_out = deployment(ns, "batch", 1, labels={"sidecar.istio.io/inject": "false"})
    real.run(real.kube.apply(), input=as_list(namespace(ns, {"istio-injection": "enabled"}), deployment(ns, "web"), opted_out))
    rollout(real, ns, "web")
    rollout(real, ns, "batch")
    assert {injected_by(p) for p in live_pods(real, ns, "web")} == {RAPID}
    assert [sidecar_images(p) for p in live_pods(real, ns, "batch")] == [[]]  # the objectSelector's opt-out

    # Without the tag, istio-injection=enabled selects nothing (istio-sidecar-injector is
    # deactivated); the revision's own webhook still serves istio.io/rev namespaces.
    real.run(real.kube.delete("mutatingwebhookconfigurations", ["istio-revision-tag-default"]))
    calls = mesh.injector_calls()
    pods = restart_and_wait(real, ns, "web")
    assert len(pods) == 2 and all(ready(p) and not sidecar_images(p) for p in pods)
    assert mesh.injector_calls() == calls  # the API server did not call the injector at all
    assert mesh.installed_revision() == RAPID  # fake_world's rule: the istiod-<rev> webhook is what counts

    real.run(real.kube.apply(), input=as_list(namespace("rev-still", {"istio.io/rev": RAPID}), deployment("rev-still", "web", 1)))
    rollout(real, "rev-still", "web")
    assert [injected_by(p) for p in live_pods(real, "rev-still")] == [RAPID]

    mesh.provision(RAPID)  # brings the tag back
    assert {injected_by(p) for p in restart_and_wait(real, ns, "web")} == {RAPID}


def test_without_the_webhooks_restarted_pods_have_no_sidecar(real, mesh):
    mesh.provision(RAPID)
    ns = "unhooked"
    real.run(real.kube.apply(), input=as_list(namespace(ns, {"istio.io/rev": RAPID}), deployment(ns, "web")))
    rollout(real, ns, "web")
    assert {injected_by(p) for p in live_pods(real, ns)} == {RAPID}
    validated = mesh.injector_calls().get("validate", 0)
    real.run(real.kube.apply(), input=as_list(peer_authentication(ns)))
    # Istio config goes through the validating webhooks: one call per configuration (two).
    assert mesh.injector_calls()["validate"] == validated + 2

    # What purge_once deletes first: every webhook configuration is_istio_webhook() picks.
    for kind, names in istio_webhooks(real).items():
        real.run(real.kube.delete(kind, names))
    assert istio_webhooks(real) == {"mutatingwebhookconfigurations": [], "validatingwebhookconfigurations": []}
    assert mesh.installed_revision() is None  # its ControlPlaneRevision is still there, its webhook is not

    calls = mesh.injector_calls()
    pods = restart_and_wait(real, ns, "web")
    assert len(pods) == 2 and all(ready(p) and not has_sidecar(p) and injected_by(p) is None for p in pods)
    real.run(real.kube.apply(), input=as_list(peer_authentication(ns, spec={"mtls": {"mode": "PERMISSIVE"}})))
    assert mesh.injector_calls() == calls  # neither injection nor validation was asked for


def test_a_gateway_runs_only_when_injected(real, mesh):
    mesh.provision(RAPID)
    ns = "gateway"
    gateway = deployment(ns, "ingress", 1, containers=[{"name": "istio-proxy", "image": "auto"}],
                         annotations={"inject.istio.io/templates": "gateway"}, labels={"istio": "ingressgateway"})
    real.run(real.kube.apply(), input=as_list(namespace(ns), gateway))

    def stuck() -> list[dict]:
        return [p for p in live_pods(real, ns) if (p.get("status", {}).get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")]
    pod = wait_for(stuck)[0]
    assert pod["status"]["phase"] == "Pending" and not ready(pod)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    with pytest.raises(StepFailed, match="timed out waiting for the condition"):
        real.run(real.kube.rollout_status(ns, "deployment/ingress", 3))

    real.run(real.kube.label_namespace(ns, {"istio-injection": "enabled"}, []))
    pods = restart_and_wait(real, ns, "ingress")
    assert len(pods) == 1 and ready(pods[0])
    # The gateway template fills in the placeholder container; it adds no second proxy.
    assert [(c["name"], c["image"]) for c in pods[0]["spec"]["containers"]] == [("istio-proxy", proxy_image(RAPID))]
    assert injected_by(pods[0]) == RAPID


def test_crds_come_back_once_after_on_manual(real, mesh):
    mesh.provision(RAPID)
    assert not mesh.armed
    mesh.on_manual()
    doomed = present_mesh_crds(real)
    assert set(MESH_CRDS) <= set(doomed) and len(doomed) > 10

    # Timed from issuing the delete: the CRDs come back REAPPEAR_SECONDS after they are found
    # gone, which may be before kubectl's --wait polling returns (measured 0.94 s from its return).
    issued = time.monotonic()
    real.run(real.kube.delete("customresourcedefinitions", doomed))  # the purge's call (--wait=true)
    wait_for(lambda: set(present_mesh_crds(real)) == set(doomed), timeout=60)
    TIMINGS["crds-back-after"] = time.monotonic() - issued
    assert TIMINGS["crds-back-after"] >= REAPPEAR_SECONDS
    assert len(mesh.reappearances) == 1 and not mesh.armed
    assert mesh.installed_revision() is None  # the CRDs came back, the objects in them did not

    mesh.wait_idle()
    real.run(real.kube.delete("customresourcedefinitions", doomed))
    time.sleep(REAPPEAR_SECONDS * 3 + 1)
    assert present_mesh_crds(real) == [] and len(mesh.reappearances) == 1  # once

    mesh.provision(RAPID)
    assert mesh.installed_revision() == RAPID


def _purge(real: Real, pause: float) -> list[list[str]]:
    """purge.run()'s loop over purge_once, with the step's own kubectl calls: rounds until one
    finds nothing, at most MAX_ROUNDS, `pause` seconds between rounds (real time)."""
    rounds = []
    for _ in range(purge.MAX_ROUNDS):
        found = purge.purge_once(real.run, real.kube, purge_crds=True)
        rounds.append(found)
        if not found:
            return rounds
        time.sleep(pause)
    raise AssertionError(f"still finding mesh objects after {purge.MAX_ROUNDS} rounds: {rounds[-1]}")


def test_the_purge_step_removes_the_managed_control_plane(real, mesh):
    """The purge's kubectl calls against a provisioned mesh whose CRDs come back once: the
    first round deletes everything, the second the re-created CRDs, the third finds nothing.
    Then the migration's other half: provision the new revision, relabel as reinject does,
    restart, and the pods run the new proxy."""
    mesh.provision(RAPID)
    ns = "purged-app"
    real.run(real.kube.apply(), input=as_list(namespace(ns, {"istio.io/rev": RAPID}), deployment(ns, "web")))
    rollout(real, ns, "web")
    doomed = present_mesh_crds(real)
    mesh.on_manual()

    began = time.monotonic()
    rounds = _purge(real, PAUSE_SECONDS)
    TIMINGS["purge"] = time.monotonic() - began
    assert len(rounds) == 3, rounds
    first = set(rounds[0])
    assert {f"mutatingwebhookconfigurations/{n}" for n in (f"istiod-{RAPID}", "istio-revision-tag-default", "istio-sidecar-injector")} <= first
    assert {"validatingwebhookconfigurations/istiod-istio-system-mcp", "validatingwebhookconfigurations/istio-validator-istio-system",
            f"{purge.CPR}/{RAPID}", f"{purge.DPC}/asm-managed", "namespace/asm-system", "namespace/istio-system",
            "kube-system/deployment/mdp-controller", "kube-system/daemonset/istio-cni-node",
            "kube-system/configmap/istio-cni-plugin-config", "clusterroles/istiod-istio-system",
            "clusterroles/istio-reader-istio-system", "clusterrolebindings/istiod-istio-system",
            "clusterrolebindings/istio-reader-istio-system"} <= first
    assert {f"crd/{n}" for n in doomed} <= first
    assert sorted(rounds[1]) == sorted(f"crd/{n}" for n in doomed)  # the fleet's re-creation, and nothing else
    assert rounds[2] == [] and len(mesh.reappearances) >= 1 and not mesh.armed

    # Nothing left, and it stays so.
    time.sleep(REAPPEAR_SECONDS * 2)
    assert istio_webhooks(real) == {"mutatingwebhookconfigurations": [], "validatingwebhookconfigurations": []}
    assert present_mesh_crds(real) == []
    kube_system = {(o["kind"], o["metadata"]["name"]) for o in items(real.run, real.kube.get("deployments,daemonsets,configmaps", namespace="kube-system"))}
    assert not kube_system & set(purge.KUBE_SYSTEM)
    assert not [o for o in items(real.run, real.kube.get("clusterroles,clusterrolebindings"))
                if o["metadata"]["name"].startswith(purge.RBAC_PREFIXES)]
    assert not {"istio-system", "asm-system"} & {n["metadata"]["name"] for n in items(real.run, real.kube.get("namespaces"))}
    assert mesh.installed_revision() is None
    assert [purge.purge_once(real.run, real.kube, purge_crds=True)] == [[]]

    # The app still has its old sidecars until restarted; restarted now, it has none.
    assert {injected_by(p) for p in live_pods(real, ns)} == {RAPID}
    assert not any(has_sidecar(p) for p in restart_and_wait(real, ns, "web"))

    # Re-provisioned on the new channel; reinject's relabel; the new proxy.
    began = time.monotonic()
    mesh.provision(REGULAR)
    assert mesh.installed_revision() == REGULAR
    to_set, to_remove = relabel({"istio.io/rev": RAPID})
    real.run(real.kube.label_namespace(ns, to_set, to_remove))
    pods = restart_and_wait(real, ns, "web")
    TIMINGS["reprovision-to-new-proxy"] = time.monotonic() - began
    assert {(injected_by(p), tuple(sidecar_images(p))) for p in pods} == {(REGULAR, ("gcr.io/gke-release/asm/proxyv2:1.20.8-asm.33",))}
    assert mesh.injected_pods(REGULAR) >= 2


def test_a_pause_shorter_than_the_reappearance_lets_the_purge_finish_early(real, mesh):
    """The purge is only as good as its pause: when the CRDs come back later than the purge
    re-checks, a round finds nothing, the step reports clean, and the CRDs return after it.
    About 30 s by practitioners' reports (no public source found); purge.RECHECK_SECONDS is 30.
    Measured here at 1/5 scale with the re-creation 1.5 pauses after the deletion."""
    mesh.provision(REGULAR)
    doomed = present_mesh_crds(real)
    mesh.reappear_delay = PAUSE_SECONDS * 1.5
    try:
        mesh.on_manual()
        rounds = _purge(real, PAUSE_SECONDS)
        finished = time.monotonic()
        assert len(rounds) == 2 and rounds[1] == []  # "clean"
        wait_for(lambda: set(present_mesh_crds(real)) == set(doomed), timeout=60)
        TIMINGS["crds-back-after-clean-purge"] = time.monotonic() - finished
        mesh.wait_idle()
    finally:
        mesh.reappear_delay = REAPPEAR_SECONDS
    assert mesh.installed_revision() is None  # the CRDs are back, empty: what the restore step then finds
