"""Drive one cluster's command resources the way the Pulumi engine and pulumi-command 1.2.1
do, without the Pulumi CLI, so operator paths can be tested as sequences.

The resources are the program's own (components.migration.step_spec / guard_spec and
components.channel.channel_spec: the same specs MigrationChain registers). The rules,
each with where it comes from (pinned: pulumi 3.272.0, pulumi-command 1.2.1, whose
provider builds on pulumi-go-provider v1.3.0):

1. Not in state -> create: `create` runs. A plain error returns no partial state
   (pulumi-go-provider infer/resource.go: partial state only for ResourceInitFailedError),
   so nothing is stored and the deployment stops there.
2. In state, `triggers` differ -> replace (the Python SDK registers every Command with
   `replace_on_changes=["triggers[*]"]`, pulumi_command/local/command.py): `create` runs
   for the new resource; the old one is deleted at the end of the deployment
   (create-before-delete is the engine's default) and its `delete`, if any, runs with its
   stored inputs (commandController.go, Command.Delete reads req.State). When the
   deployment fails first, the old one stays in state marked for deletion and is deleted
   at the end of the next successful one (engine: step_generator.go, GenerateDeletes;
   measured in testbed/ENGINE_RULES.md, rule c).
3. In state, any other input differs -> update: `update` runs, or `create` when there is
   no `update` (commandController.go, Command.Update), with the new environment plus
   PULUMI_COMMAND_STDOUT / PULUMI_COMMAND_STDERR of the stored outputs
   (commandOutputs.go, run, addPreviousOutputInEnv defaults on). Success stores the new
   inputs and outputs; a failure keeps the stored ones.
4. Inputs equal -> nothing runs.
5. In state but no longer in the program -> deleted after the program's resources
   succeeded: `delete` runs with the stored inputs; a failure keeps it in state and fails
   the deployment. `destroy` deletes everything, in reverse order.
6. Resources are processed in dependency order; one cluster's chain is a line.
7. Commands run in the project directory (commandOutputs.go, run: `dir` unset ->
   os.Getwd() of the provider, which the engine starts in the project's folder:
   ENGINE_RULES.md rule h); a fresh runner has a fresh checkout, so `workdir` here.

The differential test on the real engine (issue "Run it for real") checks these rules.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from components.channel import channel_spec
from components.migration import StepSpec, chain_steps, guard_spec, step_spec
from components.stack_key import stack_key_spec
from meshops.cluster.execute import execute
from meshops.cluster.process import StepFailed
from meshops.cluster.trust import KEY_ENV, StackKey
from meshops.context import Options, StepContext, attempt_of

ORDER_BEFORE, ORDER_AFTER = chain_steps(True)
ORDER = ("stack-key", "guard", *ORDER_BEFORE, "release-channel", *ORDER_AFTER)
PREVIOUS_STDOUT = "PULUMI_COMMAND_STDOUT"


def context(cluster: str = "dev-cluster-1", channel: str = "regular", membership: str | None = None,
            location: str = "asia-northeast1", project: str = "my-project-123456") -> StepContext:
    return StepContext(project=project, location=location, cluster=cluster, fleet_project="my-project-123456",
                       membership=membership or cluster, membership_location=location, channel=channel)


@dataclass
class Stored:
    """One resource in state: the inputs it was created/updated with and its outputs."""

    spec: StepSpec
    environment: dict[str, str]
    stdout: str


class Cancelled(Exception):
    """The operator stopped `pulumi up` after a step (the command provider is killed)."""


@dataclass
class Chain:
    """One stack's state for one cluster, and `up`/`destroy` over the program's resources."""

    world: Any
    ctx: StepContext
    options: Options = field(default_factory=Options)
    rerun: str = ""
    reregister: bool = True
    workdir: Path | None = None
    process_env: dict[str, str] = field(default_factory=dict)
    """Variables of the machine running `pulumi up` (e.g. CI=true), seen by every command."""
    state: dict[str, Stored] = field(default_factory=dict)
    calls_by_step: dict[str, int] = field(default_factory=dict)
    ran: list[tuple[str, str]] = field(default_factory=list)
    """(resource, what ran: create/update/delete) in the last deployment."""
    in_program: bool = True
    pending_deletes: list[Stored] = field(default_factory=list)
    """Replaced resources still in state, deleted at the end of the next successful `up`."""
    executor: Callable[[list[str], Mapping[str, str], Any], str] = execute
    """Runs a command's words (after `python3 -m meshops`): meshops.cluster.execute.execute, or a stand-in
    (tests/test_engine_differential.py uses testbed/recorder.py)."""

    def program(self) -> list[StepSpec]:
        if not self.in_program:
            return []
        before, after = chain_steps(self.reregister)
        return [stack_key_spec(), guard_spec(self.ctx, self.options),
                *(step_spec(s, self.ctx, self.options, self.rerun) for s in before),
                channel_spec(self.ctx, in_chain=True),
                *(step_spec(s, self.ctx, self.options, self.rerun) for s in after)]

    # ------------------------------------------------------------------ engine rules
    def up(self, stop_after: str | None = None) -> dict[str, Any]:
        """One `pulumi up`. Raises StepFailed at the first failure; `stop_after` cancels
        the deployment once that step has succeeded."""
        self.ran = []
        program = self.program()
        pending_deletes = self.pending_deletes
        for spec in program:
            env = {**spec.environment, **{k: self.state[p].stdout for k, p in spec.inputs_from_state.items()}}
            triggers = (*spec.triggers, *([attempt_of(self.state[spec.run_from].stdout)] if spec.run_from else []))
            spec = replace(spec, triggers=triggers, run_from=None)
            stored = self.state.get(spec.step)
            if stored is None:
                self.state[spec.step] = Stored(spec, env, self._run(spec.step, "create", spec.create, env))
            elif stored.spec.triggers != spec.triggers:
                stdout = self._run(spec.step, "create", spec.create, env)
                pending_deletes.append(stored)
                self.state[spec.step] = Stored(spec, env, stdout)
            elif (stored.environment, stored.spec.create, stored.spec.update, stored.spec.delete) != (env, spec.create, spec.update, spec.delete):
                command = spec.update or spec.create
                self.state[spec.step] = Stored(spec, env, self._run(spec.step, "update", command, {**env, PREVIOUS_STDOUT: stored.stdout}))
            if stop_after == spec.step:
                raise Cancelled(spec.step)
        wanted = {s.step for s in program}
        while pending_deletes:
            self._delete(pending_deletes[0])
            pending_deletes.pop(0)
        for name in [n for n in reversed(list(self.state)) if n not in wanted]:
            self._delete(self.state[name])
            del self.state[name]
        return self.results()

    def destroy(self) -> None:
        self.ran = []
        for name in reversed(list(self.state)):
            self._delete(self.state[name])
            del self.state[name]

    def _delete(self, stored: Stored) -> None:
        if stored.spec.delete:
            self._run(stored.spec.step, "delete", stored.spec.delete, {**stored.environment, PREVIOUS_STDOUT: stored.stdout})

    def _run(self, name: str, action: str, command: str, env: dict[str, str]) -> str:
        words = command.split()
        assert words[:3] == ["python3", "-m", "meshops"], command
        before = len(self.world.calls)
        self.ran.append((name, action))
        try:
            with self._in_workdir():
                return self.executor(words[3:], {**self.process_env, **env}, self.world.tools())
        finally:
            self.calls_by_step[name] = self.calls_by_step.get(name, 0) + len(self.world.calls) - before

    @contextmanager
    def _in_workdir(self) -> Iterator[None]:
        here = os.getcwd()
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            os.chdir(self.workdir)
        try:
            yield
        finally:
            os.chdir(here)

    # ------------------------------------------------------------------ conveniences
    def results(self) -> dict[str, Any]:
        return {name: json.loads(stored.stdout) for name, stored in self.state.items()}

    def key(self) -> StackKey:
        """The stack's key as this stack's state holds it (what break-glass reads with `pulumi stack export`)."""
        return StackKey.from_environment({KEY_ENV: self.state["stack-key"].stdout}, self.options.stack)

    def created(self) -> list[str]:
        return [name for name, action in self.ran if action == "create"]

    def up_until_done(self, attempts: int = 5) -> tuple[dict[str, Any], list[str]]:
        failures = []
        for _ in range(attempts):
            try:
                return self.up(), failures
            except StepFailed as error:
                failures.append(str(error))
        raise AssertionError(f"chain did not finish after {attempts} attempts: {failures}")
