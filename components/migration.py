"""The channel migration: ordered, resumable pulumi-command steps, per cluster.

Each step is a `command.local.Command` whose `create` runs `python3 -m meshops <step>`
(fixed text; values come through the environment). The engine's rules for it
(pulumi-command 1.2.1, provider/pkg/provider/local/commandController.go; the Python
SDK's `replace_on_changes=["triggers[*]"]` in pulumi_command/local/command.py):

- a change of `triggers` replaces the resource: `create` runs again;
- any other input change is an update: `update` runs, or `create` when there is none;
- a failed create is not stored (pulumi-go-provider infer/resource.go returns no partial
  state for a plain error), so the next `up` runs it again: `pulumi up` resumes at the
  failed step;
- `delete` runs only when the resource leaves the program (or on destroy), with the
  inputs it was stored with.

So every step's `triggers` are the target channel, `gke-mesh:migration.rerun` and — for
every step after preflight — the attempt id preflight draws each time it runs (from its
stdout in state),
and every step's `update` is `python3 -m meshops keep <step>`, which reprints the step's
last result and runs nothing: an option edit, an SDK upgrade or a changed input never
re-runs a destructive step. The attempt makes every step run again whenever preflight
ran, even when the channel in its triggers matches an older attempt's (a change that
stopped half-way, then a revert, then the change again: steps would otherwise keep an
older attempt's results, `verified: true` included). Not the run id: a resumed run keeps
its run id across attempts. Steps after preflight get its decision, and steps after the backup get
the backup reference, from earlier steps' stdout in state (`inputs_from_state`). No step
has a `delete`; the cluster's guard (never replaced: no triggers) has one that refuses to
let the cluster go while its migration is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from meshops.cluster.execute import STACK_KEY
from meshops.cluster.trust import KEY_ENV
from meshops.context import BACKUP_KEY, DECISION_KEY, GUARD_KEY, PREFIX, Options, StepContext, command_line, attempt_of
from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL, GUARD, STEPS, backup_source, environment_for
from meshops.steps import guard as guard_step

CHANNEL_KEY = PREFIX + "CHANNEL"


@dataclass(frozen=True)
class StepSpec:
    """What the program registers for one step: the single source for the component and
    for the tests' engine driver."""

    step: str
    create: str
    update: str
    delete: str | None
    environment: dict[str, str]
    inputs_from_state: dict[str, str] = field(default_factory=dict)
    """Environment key -> the step whose stdout (in state) fills it."""
    triggers: tuple[str, ...] = ()
    run_from: str | None = None
    """The step whose stdout's attempt id is appended to `triggers` (preflight's)."""
    cluster_data: bool = False


def step_spec(step: str, ctx: StepContext, options: Options, rerun: str) -> StepSpec:
    module = STEPS[step]
    from_state = {KEY_ENV: STACK_KEY}
    if step == "preflight":
        from_state[GUARD_KEY] = GUARD  # preflight claims the cluster for this guard
    if module.NEEDS_DECISION:
        from_state[DECISION_KEY] = "preflight"
    if module.NEEDS_BACKUP:
        from_state[BACKUP_KEY] = backup_source(step)
    return StepSpec(step=step, create=command_line(step), update=command_line(f"keep {step}"), delete=None,
                    environment=environment_for(step, ctx, options), inputs_from_state=from_state,
                    triggers=(ctx.channel, *([rerun] if rerun else [])), cluster_data=module.CLUSTER_DATA,
                    run_from=None if step == "preflight" else "preflight")


def guard_spec(ctx: StepContext, options: Options) -> StepSpec:
    """The cluster's identity without the channel: a channel change leaves the guard alone."""
    identity = {k: v for k, v in ctx.environment().items() if k != CHANNEL_KEY}
    return StepSpec(step=GUARD, create=command_line(GUARD), update=command_line(f"keep {GUARD}"),
                    delete=command_line("guard-delete"), environment={**identity, **options.environment(guard_step.OPTIONS)},
                    inputs_from_state={KEY_ENV: STACK_KEY})


def chain_steps(reregister: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The steps before and after the release-channel resource."""
    return CHAIN_BEFORE_CHANNEL, tuple(s for s in CHAIN_AFTER_CHANNEL if reregister or s != "reregister-membership")


def register(name: str, spec: StepSpec, steps: dict[str, command.local.Command], parent: pulumi.Resource | None,
              depends_on: list[pulumi.Resource]) -> command.local.Command:
    environment: dict[str, pulumi.Input[str]] = dict(spec.environment)
    for key, producer in spec.inputs_from_state.items():
        environment[key] = steps[producer].stdout
    triggers: list[pulumi.Input[str]] = list(spec.triggers)
    if spec.run_from:
        triggers.append(steps[spec.run_from].stdout.apply(attempt_of))
    # Steps whose output names cluster objects keep it out of the logs (progress lines
    # on stderr are summaries) and store it encrypted in state.
    return command.local.Command(
        name,
        create=spec.create,
        update=spec.update,
        delete=spec.delete,
        environment=environment,
        triggers=triggers or None,
        logging=command.local.Logging.STDERR if spec.cluster_data else None,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on,
                                    additional_secret_outputs=["stdout", "stderr"] if spec.cluster_data else None),
    )


class MigrationChain(pulumi.ComponentResource):
    """guard; preflight → backup → relax-security → disable-management → uninject → purge,
    then (after the release-channel resource) reregister-membership → enable-management →
    wait-ready → restore → reinject → verify."""

    steps: dict[str, command.local.Command]

    def __init__(self, name: str, ctx: StepContext, options: Options, reregister: bool, rerun: str,
                 stack_key: command.local.Command, depends_on: list[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-mesh:migration:MigrationChain", name, None, opts)
        self.ctx, self.options, self.rerun, self.steps = ctx, options, rerun, {}
        self.sources: dict[str, command.local.Command] = {STACK_KEY: stack_key}
        before, self.after_channel_steps = chain_steps(reregister)
        self.guard = register(f"{ctx.cluster}-{GUARD}", guard_spec(ctx, options), self.sources, self, depends_on)
        self.sources[GUARD] = self.guard
        previous: list[pulumi.Resource] = [*depends_on, self.guard]
        for step in before:
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
        spec = step_spec(step, self.ctx, self.options, self.rerun)
        self.steps[step] = register(f"{self.ctx.cluster}-{step}", spec, {**self.sources, **self.steps}, self, depends_on)
        return self.steps[step]
