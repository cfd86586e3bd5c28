"""The channel migration: ordered, resumable pulumi-command steps, per cluster.

Each step runs `python3 -m meshops <step>` (fixed text; values come through the
environment). Every step is replaced only when the target channel changes (`triggers`),
so `pulumi up` after a failure resumes at the failed step: the ones before it are in
state with unchanged inputs. Steps after preflight get its JSON decision through their
environment, from Pulumi state, and do nothing on "skip". No step has a `delete`
command: destroying the stack never touches the cluster.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from meshops.context import DECISION_KEY, Options, StepContext, command_line
from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL, STEPS, environment_for


class MigrationChain(pulumi.ComponentResource):
    """preflight → backup → relax-security → disable-management → uninject → purge, then
    (after the release-channel resource) reregister-membership → enable-management →
    wait-ready → reinject → restore → verify."""

    steps: dict[str, command.local.Command]

    def __init__(self, name: str, ctx: StepContext, options: Options, reregister: bool,
                 depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:migration:MigrationChain", name, None, opts)
        self.ctx, self.options, self.steps = ctx, options, {}
        self.after_channel_steps = tuple(s for s in CHAIN_AFTER_CHANNEL if reregister or s != "reregister-membership")
        previous = depends_on
        for step in CHAIN_BEFORE_CHANNEL:
            previous = [self._step(step, previous)]

    @property
    def last_before_channel(self) -> command.local.Command:
        return self.steps[CHAIN_BEFORE_CHANNEL[-1]]

    def continue_after(self, channel: pulumi.Resource, management_apis: list[pulumi.Resource]) -> None:
        """The steps after the cluster's channel has changed."""
        previous: list[pulumi.Resource] = [channel]
        for step in self.after_channel_steps:
            extra = management_apis if step == "enable-management" else []
            previous = [self._step(step, [*previous, *extra])]
        self.register_outputs({"verify": self.steps["verify"].stdout})

    def _step(self, step: str, depends_on: list[pulumi.Resource]) -> command.local.Command:
        environment: dict[str, pulumi.Input[str]] = dict(environment_for(step, self.ctx, self.options))
        if STEPS[step].NEEDS_DECISION:
            environment[DECISION_KEY] = self.steps["preflight"].stdout
        # Steps whose output names cluster objects keep it out of the logs (progress lines
        # on stderr are summaries) and store it encrypted in state.
        cluster_data = STEPS[step].CLUSTER_DATA
        self.steps[step] = command.local.Command(
            f"{self.ctx.cluster}-{step}",
            create=command_line(step),
            environment=environment,
            triggers=[self.ctx.channel],
            logging=command.local.Logging.STDERR if cluster_data else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on,
                                        additional_secret_outputs=["stdout", "stderr"] if cluster_data else None),
        )
        return self.steps[step]
