"""argv builders for gcloud. Flags use `--flag=value` so a value can never become a flag."""

from __future__ import annotations

from meshops.context import StepContext


def describe_cluster(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "clusters", "describe", ctx.cluster,
            f"--project={ctx.project}", f"--location={ctx.location}", "--format=json"]


def update_release_channel(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "clusters", "update", ctx.cluster,
            f"--project={ctx.project}", f"--location={ctx.location}",
            f"--release-channel={ctx.channel}", "--quiet"]
