"""Prove the result: control plane ACTIVE on the target revision, every injected pod on
it, data plane ACTIVE (or DISABLED with no injected pod, as right after provisioning).
Prints one JSON result that the stack exports under `clusters.<name>`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from meshops import gcloud
from meshops.context import StepInput, revision_of
from meshops.fleet_state import mesh_state
from meshops.inventory import SIDECAR, injected_pods
from meshops.kube import PLAN_KUBE, cluster_access, items
from meshops.process import StepFailed, Tools
from meshops.steps.wait_ready import delays

SUMMARY = 'Proves the control plane ACTIVE on the target revision, every injected pod on it and the data plane ACTIVE; counts pods per proxy image.'
STOPS = 'any of these not true'
CLUSTER_DATA = False
NEEDS_DECISION = True
OPTIONS: tuple[str, ...] = ()
DATA_PLANE_WAIT = 300


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_mesh(inp.ctx.fleet_project), gcloud.describe_cluster(inp.ctx), PLAN_KUBE.get("pods", all_namespaces=True),
            PLAN_KUBE.get("mutatingwebhookconfigurations")]


def pod_revision(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    status = (meta.get("annotations") or {}).get("sidecar.istio.io/status")
    if status:
        try:
            return str(json.loads(status).get("revision", ""))
        except ValueError:
            pass
    return str((meta.get("labels") or {}).get("istio.io/rev", ""))


def revision_tags(webhooks: list[dict]) -> dict[str, str]:
    """Revision tag -> revision, from the `istio-revision-tag-<tag>` webhooks: a pod injected
    through the default tag may record the tag instead of the revision."""
    tags = {}
    for hook in webhooks:
        meta = hook.get("metadata") or {}
        name, revision = str(meta.get("name", "")), (meta.get("labels") or {}).get("istio.io/rev")
        if name.startswith("istio-revision-tag-") and revision:
            tags[name.removeprefix("istio-revision-tag-")] = revision
    return tags


def proxy_image(pod: dict) -> str:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == SIDECAR:
            return str(container.get("image", ""))
    return ""


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    ctx = inp.ctx
    expected = revision_of(ctx.channel)
    with cluster_access(ctx, tools.runner) as kube:
        pods = injected_pods(tools.runner, kube)
        tags = revision_tags(items(tools.runner, kube.get("mutatingwebhookconfigurations")))
    images = Counter(proxy_image(p) for p in pods)
    stale = sorted(f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}" for p in pods
                   if tags.get(pod_revision(p), pod_revision(p)) != expected)
    start = tools.now()
    for delay in delays():
        state = mesh_state(tools.describe_mesh(ctx.fleet_project), ctx.membership_location, inp.decision.membership)
        if state.data_plane_state == "ACTIVE" or not pods or tools.now() - start + delay > DATA_PLANE_WAIT:
            break
        tools.log(f"[{ctx.cluster}] verify: data plane {state.data_plane_state} with {len(pods)} injected pods; waiting")
        tools.sleep(delay)
    warnings = []
    if state.data_plane_state == "DISABLED" and not pods:
        warnings.append("data plane DISABLED: no injected pod yet (normal right after provisioning; it turns ACTIVE once injected workloads run)")
    if inp.decision.implementation not in ("UNKNOWN", state.implementation):
        warnings.append(f"implementation changed from {inp.decision.implementation} to {state.implementation}")
    problems = []
    if state.control_plane_state != "ACTIVE" or state.ready_revision() != expected:
        problems.append(f"control plane {state.control_plane_state} on {state.ready_revision()}, expected ACTIVE on {expected}")
    if stale:
        problems.append(f"{len(stale)} pods not on {expected}: {', '.join(stale[:5])}")
    if pods and state.data_plane_state != "ACTIVE":
        problems.append(f"data plane {state.data_plane_state} with {len(pods)} injected pods")
    for warning in warnings:
        tools.log(f"[{ctx.cluster}] verify: warning: {warning}")
    result = {
        "cluster": ctx.cluster,
        "control_plane_state": state.control_plane_state,
        "data_plane_state": state.data_plane_state,
        "revision": state.ready_revision() or "",
        "implementation": state.implementation,
        "implementation_before": inp.decision.implementation,
        "proxy_images": dict(sorted(images.items())),
        "injected_pods": len(pods),
        "verified": not problems,
        "warnings": warnings,
    }
    if problems:
        raise StepFailed(f"cluster {ctx.cluster}: not verified: {'; '.join(problems)}")
    tools.log(f"[{ctx.cluster}] verify: ACTIVE on {expected}; {len(pods)} injected pods on {dict(images) or 'no proxy'}")
    return result
