"""`meshops rollout --stacks dev,staging,prod`: preview or up stacks in order through the
Pulumi Automation API, streaming their output, stopping at the first failure.

`--stacks a,b;c` is two waves: a and b, then c. Within a wave stacks run in the order
given, `--parallel N` of them at a time (default 1); a wave starts only when the one
before it succeeded. The Automation API sits behind `Workspace`, so tests drive the
rollout with a fake (the Pulumi CLI cannot be installed here).
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


class RolloutError(Exception):
    """Bad arguments or a missing CLI; one line."""


@dataclass
class StackResult:
    stack: str
    status: str  # succeeded | failed | not run
    seconds: float = 0.0
    failed_resource: str = ""
    message: str = ""

    @property
    def failed_step(self) -> str:
        """The chain step of the failed resource (`dev-cluster-1-wait-ready` -> wait-ready)."""
        return next((step for step in sorted(STEPS, key=len, reverse=True) if self.failed_resource.endswith("-" + step)), "")


class Workspace(Protocol):
    def run(self, stack: str, action: str, on_output: Callable[[str], None]) -> StackResult: ...


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
            write: Callable[[str], None]) -> list[StackResult]:
    if action not in ACTIONS:
        raise RolloutError(f"action {action!r}: expected preview or up")
    if parallel < 1:
        raise RolloutError(f"--parallel {parallel}: expected 1 or more")
    lock = threading.Lock()
    results: dict[str, StackResult] = {}
    stop = threading.Event()

    def one(stack: str) -> StackResult:
        if stop.is_set():
            return StackResult(stack, "not run")

        def line(text: str) -> None:
            with lock:
                write(f"[{stack}] {text.rstrip()}")

        start = time.monotonic()
        result = workspace.run(stack, action, line)
        result.seconds = round(time.monotonic() - start, 1)
        if result.status != "succeeded":
            stop.set()
        return result

    for wave in waves:
        if stop.is_set():
            results.update({s: StackResult(s, "not run") for s in wave})
            continue
        with ThreadPoolExecutor(max_workers=min(parallel, len(wave))) as pool:
            for result in pool.map(one, wave):
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
    rows += [f"| {r.stack} | {r.status} | {r.seconds if r.status != 'not run' else '–'} | {r.failed_step or '–'} |" for r in results]
    return "\n".join(rows)


class AutomationWorkspace:
    """The real thing: `pulumi preview`/`pulumi up` per stack through the Automation API."""

    def __init__(self, directory: Path):
        if shutil.which("pulumi") is None:
            raise RolloutError("the Pulumi CLI is not installed (needed by the Automation API); install it and log in")
        self.directory = directory

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
            selected = automation.select_stack(stack_name=stack, work_dir=str(self.directory))
            runner = selected.preview if action == "preview" else selected.up
            runner(on_output=on_output, on_event=on_event, diff=True)
        except automation.errors.CommandError as error:
            last = (str(error).strip().splitlines() or ["failed"])[-1]
            name = failed[0].rsplit("::", 1)[-1] if failed else ""
            return StackResult(stack, "failed", failed_resource=name, message=last[:300])
        return StackResult(stack, "succeeded")
