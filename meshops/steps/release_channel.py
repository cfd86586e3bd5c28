"""Set a cluster's GKE release channel, only when it differs from the target.

Reading first makes the step idempotent: the first `pulumi up` on a cluster already on
the target channel changes nothing, and a re-run after a failure is safe.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput

SUMMARY = "Changes the cluster's GKE release channel when it differs from the target."
STOPS = ''
CLUSTER_DATA = False
NEEDS_DECISION = False
NEEDS_BACKUP = False
OPTIONS: tuple[str, ...] = ()


def commands(inp: StepInput) -> list[list[str]]:
    return [gcloud.describe_cluster(inp.ctx), gcloud.update_release_channel(inp.ctx)]


def current_channel(described: Any) -> str:
    """The channel a `clusters describe` answer reports: rapid, regular, stable, extended or unspecified."""
    if not isinstance(described, dict):
        raise StepFailed("gcloud container clusters describe returned no cluster object")
    channel = (described.get("releaseChannel") or {}).get("channel") or "UNSPECIFIED"
    return str(channel).lower()


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    ctx, runner = inp.ctx, tools.runner
    before = current_channel(run_json(runner, gcloud.describe_cluster(ctx)))
    if before == ctx.channel:
        return {"cluster": ctx.cluster, "channel": ctx.channel, "changed": False}
    runner(gcloud.update_release_channel(ctx))
    after = current_channel(run_json(runner, gcloud.describe_cluster(ctx)))
    if after != ctx.channel:
        raise StepFailed(f"cluster {ctx.cluster}: release channel is {after} after the update, expected {ctx.channel}")
    tools.log(f"[{ctx.cluster}] release-channel: {before} -> {ctx.channel}")
    return {"cluster": ctx.cluster, "channel": ctx.channel, "changed": True, "from": before}
