"""Drive the migration chain the way `pulumi up` does, without Pulumi.

Steps run in chain order; a step that succeeded is "in state" and does not run again on
the next `up` (its inputs have not changed); the first failure stops the `up`. Each step
gets its environment exactly as the program registers it (meshops.steps.environment_for
plus preflight's stdout as the decision) and parses it back, as under `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshops.context import DECISION_KEY, Decision, Options, StepContext, StepInput
from meshops.process import StepFailed
from meshops.steps import CHAIN_AFTER_CHANNEL, CHAIN_BEFORE_CHANNEL, STEPS, environment_for

ORDER = (*CHAIN_BEFORE_CHANNEL, "release-channel", *CHAIN_AFTER_CHANNEL)


def context(cluster: str = "dev-cluster-1", channel: str = "regular", membership: str | None = None,
            location: str = "asia-northeast1", project: str = "my-project-123456") -> StepContext:
    return StepContext(project=project, location=location, cluster=cluster, fleet_project="my-project-123456",
                       membership=membership or cluster, membership_location=location, channel=channel)


@dataclass
class Chain:
    world: Any
    ctx: StepContext
    options: Options = field(default_factory=Options)
    order: tuple[str, ...] = ORDER
    state: dict[str, str] = field(default_factory=dict)  # step -> stdout, like Pulumi state
    calls_by_step: dict[str, int] = field(default_factory=dict)

    def up(self) -> dict[str, Any]:
        """Run every step not yet in state; raise StepFailed at the first failure."""
        import json

        for name in self.order:
            if name in self.state:
                continue
            step = STEPS[name]
            env = environment_for(name, self.ctx, self.options)
            if step.NEEDS_DECISION:
                env[DECISION_KEY] = self.state["preflight"]
            inp = StepInput.from_environment(env, needs_decision=step.NEEDS_DECISION)
            before = len(self.world.calls)
            try:
                result = step.run(inp, self.world.tools())
            finally:
                self.calls_by_step[name] = self.calls_by_step.get(name, 0) + len(self.world.calls) - before
            self.state[name] = result.to_json() if isinstance(result, Decision) else json.dumps(result, sort_keys=True)
        return {name: json.loads(self.state[name]) for name in self.order}

    def up_until_done(self, attempts: int = 5) -> tuple[dict[str, Any], list[str]]:
        failures = []
        for _ in range(attempts):
            try:
                return self.up(), failures
            except StepFailed as error:
                failures.append(str(error))
        raise AssertionError(f"chain did not finish after {attempts} attempts: {failures}")
