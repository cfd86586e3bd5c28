"""Run an external CLI from an argv list and turn every failure into one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

DEFAULT_TIMEOUT = 300

_INSTALL_HINTS = {
    "gcloud": "install the Google Cloud CLI and run `gcloud auth login`",
    "kubectl": "install kubectl (`gcloud components install kubectl`)",
}


class StepFailed(Exception):
    """A step cannot go on. The message is one line: what failed and what to do."""


Runner = Callable[[Sequence[str]], str]
"""Runs an argv list and returns its stdout; raises StepFailed. Tests pass a fake."""


def run(argv: Sequence[str], timeout: int = DEFAULT_TIMEOUT) -> str:
    """Run `argv` (never through a shell) and return stdout."""
    if shutil.which(argv[0]) is None:
        raise StepFailed(f"{argv[0]} is not on PATH; {_INSTALL_HINTS.get(argv[0], 'install it')}")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"`{' '.join(argv[:4])} …` did not finish within {timeout}s; check connectivity and re-run `pulumi up`") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise StepFailed(f"`{' '.join(argv[:4])} …` failed (exit {done.returncode}): {last[:300]}")
    return done.stdout


def run_json(runner: Runner, argv: Sequence[str]) -> Any:
    """Run a command that prints JSON; a malformed answer is a StepFailed, not a traceback."""
    out = runner(argv)
    try:
        return json.loads(out) if out.strip() else None
    except ValueError:
        raise StepFailed(f"`{' '.join(argv[:4])} …` printed something that is not JSON: {out[:80]!r}") from None


@dataclass
class Tools:
    """What a step uses to act on the world; tests swap in fakes and a simulated clock."""

    runner: Runner = run
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
