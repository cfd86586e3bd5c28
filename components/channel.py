"""A cluster's GKE release channel as a declared resource.

Mechanism: a pulumi-command `Command` running `python3 -m meshops release-channel`,
whose `environment` carries the target channel, so `pulumi preview --diff` shows
`GKE_MESH_CHANNEL: "rapid" => "regular"` on this resource and the change is an
in-place update. Chosen over a Python dynamic resource because dynamic providers are
pickled into state with dill (fragile across Python and library upgrades, limited
import/read) and would need Google client libraries in the program; the command keeps
the exact gcloud calls reviewable (`meshops plan` lists them) and needs only gcloud.
The step reads the channel before changing it, so it is idempotent. In create mode the
cluster is created on the target channel and this resource owns later changes.
"""

from __future__ import annotations

from importlib.metadata import version

import pulumi
import pulumi_command as command

from components.migration import StepSpec, register
from meshops.context import Options, StepContext, command_line
from meshops.steps import environment_for


def channel_spec(ctx: StepContext, in_chain: bool) -> StepSpec:
    """Unlike the chain's steps this one is meant to run on an update: a new target channel
    is an input change, and its `update` is the step itself, which reads the channel first
    and changes it only when it differs. In a migration chain it is also replaced (run
    again) by every preflight run (its attempt id in the triggers), so a channel
    changed by hand is put back."""
    return StepSpec(step="release-channel", create=command_line("release-channel"), update=command_line("release-channel"),
                    delete=None, environment=environment_for("release-channel", ctx, Options()),
                    run_from="preflight" if in_chain else None)


GET_CLUSTER = "gcp:container/getCluster:getCluster"


def live_channel(ctx: StepContext, parent: pulumi.Resource, after: list[pulumi.Resource]) -> pulumi.Output[str | None]:
    """The cluster's GKE channel as GKE reports it now, read after `after` (the verify step):
    so each `up` notices a channel changed outside the stack since the last migration, which
    no command resource would (`pulumi refresh` never re-runs a command). The
    `gcp:container/getCluster` invoke (pulumi_gcp container.get_cluster_output) by token, at
    the installed pulumi-gcp's version, keeps `pulumi_gcp.container` (~0.2 s) out of the program."""
    args = {"location": ctx.location, "name": ctx.cluster, "project": ctx.project, "skipNodePoolRefresh": None}
    opts = pulumi.InvokeOutputOptions(parent=parent, depends_on=after, version=version("pulumi-gcp"))
    live = pulumi.runtime.invoke_output(GET_CLUSTER, args, opts=opts)
    return live.apply(lambda result: next((str(c.get("channel", "")).lower() for c in (result or {}).get("releaseChannels") or []
                                           if isinstance(c, dict) and c.get("channel")), None))


class ReleaseChannel(pulumi.ComponentResource):
    """Keeps one cluster on `ctx.channel`."""

    command: command.local.Command

    def __init__(self, name: str, ctx: StepContext, depends_on: list[pulumi.Resource],
                 chain_steps: dict[str, command.local.Command] | None = None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:channel:ReleaseChannel", name, None, opts)
        spec = channel_spec(ctx, in_chain=chain_steps is not None)
        self.command = register(f"{ctx.cluster}-release-channel", spec, chain_steps or {}, self, depends_on)
        self.register_outputs({"channel": ctx.channel})
