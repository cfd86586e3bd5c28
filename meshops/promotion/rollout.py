"""`meshops rollout --stacks dev,staging,prod`: preview or up stacks in order through the
Pulumi Automation API, streaming their output, stopping at the first failure.

`--stacks a,b;c` is two waves: a and b, then c. Within a wave stacks run in the order
given, `--parallel N` of them at a time (default 1); a wave starts only when the one
before it succeeded. The Automation API sits behind `Workspace`, so tests drive the
rollout with a fake (the Pulumi CLI cannot be installed here).

`--action up` never updates a stack it has not just previewed: each wave is previewed
first (with the policy pack), then the operator is asked once for the wave, naming every
stack and its change counts (`--yes` answers for them; without a terminal and without
`--yes` nothing is updated). This is the local stand-in for the GitHub environments'
required reviewers, which a rollout from a workstation does not pass through.

Every preview and up runs the policy pack in `policy/` (Automation API `policy_packs=`);
its venv must exist (`make policy-venv`). `select_stack` writes the workspace's current
stack, a file shared by every stack of the project, so selections are serialised by a lock;
each operation then names its stack explicitly (`--stack`).
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from components.settings import ConfigError, parse_stack
from meshops.steps import STEPS

ACTIONS = ("preview", "up")
_SELECT = threading.Lock()


class RolloutError(Exception):
    """Bad arguments or a missing CLI; one line."""


@dataclass
class StackResult:
    stack: str
    status: str  # succeeded | failed | not run
    seconds: float = 0.0
    failed_resource: str = ""
    message: str = ""
    changes: dict[str, int] | None = None
    """The preview's change summary (operation -> count), when the workspace reports one."""

    @property
    def failed_step(self) -> str:
        """The chain step of the failed resource (`dev-cluster-1-wait-ready` -> wait-ready)."""
        return next((step for step in sorted(STEPS, key=len, reverse=True) if self.failed_resource.endswith("-" + step)), "")


class Workspace(Protocol):
    def run(self, stack: str, action: str, on_output: Callable[[str], None]) -> StackResult: ...


Confirm = Callable[[list[StackResult]], bool]
"""Asked once per wave before `up`, with that wave's preview results; True to go on."""


def describe_changes(result: StackResult) -> str:
    if result.changes is None:
        return f"{result.stack}: changes not reported"
    changed = {op: n for op, n in sorted(result.changes.items()) if op != "same" and n}
    return f"{result.stack}: " + (", ".join(f"{n} to {op}" for op, n in changed.items()) or "no changes")


def ask_on_terminal(read: Callable[[str], str] = input) -> Confirm:
    """The interactive confirmation: the operator types `yes` to update the wave."""
    def confirm(previews: list[StackResult]) -> bool:
        names = ", ".join(r.stack for r in previews)
        summary = "; ".join(describe_changes(r) for r in previews)
        try:
            answer = read(f"Previewed {summary}. Update {names}? Type yes to go on: ")
        except EOFError:
            return False
        return answer.strip().lower() == "yes"
    return confirm


def parse_waves(text: str) -> list[list[str]]:
    waves = [[s.strip() for s in wave.split(",") if s.strip()] for wave in text.split(";")]
    if not waves or any(not wave for wave in waves):
        raise RolloutError(f"--stacks {text!r}: expected stack names separated by ',' (same wave) and ';' (next wave)")
    names = [s for wave in waves for s in wave]
    for name in names:
        try:
            parse_stack(name)
        except ConfigError as error:
            raise RolloutError(f"--stacks: {error}") from None
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RolloutError(f"--stacks: {', '.join(duplicates)} listed twice")
    return waves


def rollout(waves: list[list[str]], action: str, workspace: Workspace, parallel: int,
            write: Callable[[str], None], confirm: Confirm | None = None) -> list[StackResult]:
    """Run `action` on every stack, wave by wave. For `up`, each wave is previewed first and
    `confirm` decides (once per wave) whether it is updated; `up` without `confirm` is refused."""
    if action not in ACTIONS:
        raise RolloutError(f"action {action!r}: expected preview or up")
    if parallel < 1:
        raise RolloutError(f"--parallel {parallel}: expected 1 or more")
    if action == "up" and confirm is None:
        raise RolloutError("--action up previews each wave and asks before updating it: run it on a terminal, or pass --yes")
    lock = threading.Lock()
    results: dict[str, StackResult] = {}
    stop = threading.Event()

    def one(stack: str, step: str) -> StackResult:
        if stop.is_set():
            return StackResult(stack, "not run")

        def line(text: str) -> None:
            with lock:
                write(f"[{stack}] {text.rstrip()}")

        start = time.monotonic()
        result = workspace.run(stack, step, line)
        result.seconds = round(time.monotonic() - start, 1)
        if result.status != "succeeded":
            if step != action:
                result.message = f"preview before up: {result.message}"
            stop.set()
        return result

    def run_wave(wave: list[str], step: str) -> list[StackResult]:
        with ThreadPoolExecutor(max_workers=min(parallel, len(wave))) as pool:
            return list(pool.map(lambda stack: one(stack, step), wave))

    for wave in waves:
        if stop.is_set():
            results.update({s: StackResult(s, "not run") for s in wave})
            continue
        if action == "up":
            previews = run_wave(wave, "preview")
            if stop.is_set():
                results.update({r.stack: r for r in previews})
                continue
            if not confirm(previews):
                write(f"rollout stopped: the update of {', '.join(wave)} was not confirmed; nothing was updated in this wave")
                results.update({s: StackResult(s, "declined") for s in wave})
                stop.set()
                continue
        for result in run_wave(wave, action):
            results[result.stack] = result
    ordered = [results[s] for wave in waves for s in wave]
    for result in ordered:
        if result.status == "failed":
            where = f" at step {result.failed_step} ({result.failed_resource})" if result.failed_resource else ""
            write(f"rollout stopped: {action} of stack {result.stack} failed{where}: {result.message}")
            break
    write(summary_table(ordered, action))
    return ordered


def summary_table(results: list[StackResult], action: str) -> str:
    rows = [f"| stack | {action} | seconds | failed step |", "|---|---|---|---|"]
    rows += [f"| {r.stack} | {r.status} | {r.seconds if r.status not in ('not run', 'declined') else '–'} | {r.failed_step or '–'} |" for r in results]
    return "\n".join(rows)


def policy_pack(directory: Path) -> Path:
    """The project's policy pack, refused when its venv is missing (the CLI would fail on it
    with a less clear message)."""
    pack = (directory / "policy").resolve()
    if not (pack / "PulumiPolicy.yaml").is_file():
        raise RolloutError(f"no policy pack at {pack} (expected PulumiPolicy.yaml)")
    if not (pack / "venv").is_dir():
        raise RolloutError(f"the policy pack's venv {pack / 'venv'} is missing: run `make policy-venv` first")
    return pack


class AutomationWorkspace:
    """The real thing: `pulumi preview`/`pulumi up` per stack through the Automation API,
    each with the project's policy pack."""

    def __init__(self, directory: Path, policy_packs: list[Path] | None = None):
        if shutil.which("pulumi") is None:
            raise RolloutError("the Pulumi CLI is not installed (needed by the Automation API); install it and log in")
        self.directory = directory
        self.policy_packs = [str(p) for p in (policy_packs if policy_packs is not None else [policy_pack(directory)])]

    def select(self, stack: str):
        from pulumi import automation

        with _SELECT:  # `pulumi stack select` rewrites the project's shared workspace file
            return automation.select_stack(stack_name=stack, work_dir=str(self.directory))

    def run(self, stack: str, action: str, on_output: Callable[[str], None]) -> StackResult:
        from pulumi import automation

        failed: list[str] = []

        def on_event(event) -> None:
            failure = getattr(event, "res_op_failed_event", None)
            diagnostic = getattr(event, "diagnostic_event", None)
            if failure is not None and not failed:
                failed.append(failure.metadata.urn)
            elif diagnostic is not None and diagnostic.severity == "error" and diagnostic.urn and not failed:
                failed.append(diagnostic.urn)

        try:
            selected = self.select(stack)
            runner = selected.preview if action == "preview" else selected.up
            outcome = runner(on_output=on_output, on_event=on_event, diff=True, policy_packs=self.policy_packs)
        except automation.errors.CommandError as error:
            last = (str(error).strip().splitlines() or ["failed"])[-1]
            name = failed[0].rsplit("::", 1)[-1] if failed else ""
            return StackResult(stack, "failed", failed_resource=name, message=last[:300])
        changes = getattr(outcome, "change_summary", None)
        return StackResult(stack, "succeeded", changes={str(k.value if hasattr(k, "value") else k): int(v)
                                                        for k, v in changes.items()} if changes is not None else None)
