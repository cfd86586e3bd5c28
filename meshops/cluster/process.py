"""Run an external CLI from an argv list and turn every failure into one clear line."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

DEFAULT_TIMEOUT = 600  # above kubectl --timeout=300s, so kubectl reports its own timeout first

_INSTALL_HINTS = {
    "gcloud": "install the Google Cloud CLI, then `gcloud auth login`",
    "kubectl": "install kubectl and gke-gcloud-auth-plugin (`gcloud components install kubectl gke-gcloud-auth-plugin`)",
}
_CAUSES = (
    (("PERMISSION_DENIED", "403", "Forbidden", "forbidden"),
     "the deploying identity lacks a role or RBAC permission: see README \"Least privilege\""),
    (("active account", "auth login", "Reauthentication", "refresh token", "credentials"),
     "authenticate: `gcloud auth login` and `gcloud auth application-default login`"),
    (("Unable to connect", "dial tcp", "connection refused", "i/o timeout"),
     "the cluster's API server is unreachable from here: check the network path and authorized networks"),
)


class StepFailed(Exception):
    """A step cannot go on. The message is one line: what failed and what to do."""


Runner = Callable[..., str]
"""`runner(argv, input=None)`: runs an argv list (with `input` on its standard input, so
cluster data never touches a temp file) and returns its stdout; raises StepFailed. Tests
pass a fake."""


def shown(argv: Sequence[str]) -> str:
    """A command for a message: the first words, without the private kubeconfig path."""
    words = [a for a in argv if not a.startswith("--kubeconfig=")]
    return " ".join(words[:5]) + (" …" if len(words) > 5 else "")


_BACKTICKED = re.compile(r"`([^`]*)`")
_QUOTED = re.compile(r'"[^"\s]{1,253}"')
_KIND_SLASH_NAME = re.compile(r"(?<![/:\w.-])([a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*)/[a-z0-9][a-z0-9.-]*")
_FAILED = "failed (exit "


def _redact_command(text: str) -> str:
    words = text.split()
    if not words or words[0] != "kubectl":
        return text
    out, positional = [], 0
    for word in words:
        if word.startswith("--namespace="):
            out.append("--namespace=<namespace>")
        elif word.startswith("-") or word in ("…", "kubectl"):
            out.append(word)
        else:
            positional += 1
            # kubectl VERB [SUBVERB] KIND[/NAME] [NAME]: keep the verb and kind, not names
            if "/" in word:
                out.append(word.split("/", 1)[0] + "/<name>")
            elif positional <= 2:
                out.append(word)
            else:
                out.append("<name>")
    return " ".join(out)


def redact_object_names(text: str) -> str:
    """A failure or progress line of a step whose output is secret in state
    (CLUSTER_DATA): the same line without Kubernetes object names. kubectl commands in
    backticks keep their verb and kind (`kubectl rollout restart deployment/<name>
    --namespace=<namespace>`); a double-quoted token, the way kubectl and the API server
    name an object (`deployments.apps "web" not found`), becomes "<name>", and so does the
name in `kind/name` in a failed command's error line. What a step
    itself interpolates (a list of namespaces, say) is the step's to leave out."""
    text = _QUOTED.sub('"<name>"', _BACKTICKED.sub(lambda m: f"`{_redact_command(m.group(1))}`", text))
    if _FAILED in text:  # a CLI's own error line: `deployments/web`-style references too
        head, tail = text.split(_FAILED, 1)
        text = head + _FAILED + _KIND_SLASH_NAME.sub(lambda m: f"{m.group(1)}/<name>", tail)
    return text


def cause_of(stderr_line: str) -> str:
    for markers, cause in _CAUSES:
        if any(m in stderr_line for m in markers):
            return f"; {cause}"
    return ""


def environment_for(argv: Sequence[str]) -> dict[str, str] | None:
    """kubectl also gets its private kubeconfig as KUBECONFIG: gke-gcloud-auth-plugin keeps
    its token cache beside the kubeconfig KUBECONFIG names (else beside ~/.kube/config,
    shared with the user's other identities), and `--kubeconfig` alone does not tell it."""
    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--kubeconfig=")), None)
    if argv[0] != "kubectl" or path is None:
        return None
    return {**os.environ, "KUBECONFIG": path}


def run(argv: Sequence[str], input: str | None = None, timeout: int = DEFAULT_TIMEOUT) -> str:
    """Run `argv` (never through a shell), `input` on its stdin, and return stdout."""
    if shutil.which(argv[0]) is None:
        raise StepFailed(f"{argv[0]} is not on PATH; {_INSTALL_HINTS.get(argv[0], 'install it')}")
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=None if input is not None else subprocess.DEVNULL, env=environment_for(argv))
    except subprocess.TimeoutExpired:
        raise StepFailed(f"`{shown(argv)}` did not finish within {timeout}s; check network access to Google Cloud and the cluster") from None
    if done.returncode != 0:
        last = last_error_line(done.stderr)
        raise StepFailed(f"`{shown(argv)}` failed (exit {done.returncode}): {last[:300]}{cause_of(done.stderr)}")
    return done.stdout


def last_error_line(stderr: str) -> str:
    """A CLI's error, in one line: its last line, with the line before when the last is only
    what it names (gcloud storage: "The following URLs matched no objects or files:" then the
    URL, name_expansion.py)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()] or ["(no error output)"]
    if len(lines) > 1 and " " not in lines[-1]:
        return f"{lines[-2]} {lines[-1]}"
    return lines[-1]


def run_json(runner: Runner, argv: Sequence[str], input: str | None = None) -> Any:
    """Run a command that prints JSON; a malformed answer is a StepFailed, not a traceback."""
    out = runner(argv, input=input) if input is not None else runner(argv)
    try:
        return json.loads(out) if out.strip() else None
    except ValueError:
        raise StepFailed(f"`{shown(argv)}` printed something that is not JSON ({out[:60]!r}); check the CLI's version and output format") from None


@dataclass
class Tools:
    """What a step uses to act on the world; tests swap in fakes and a simulated clock."""

    runner: Runner = run
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    random: Callable[[], float] = random.random
    cache: Any = None
    """Where fleet answers are shared (meshops.cluster.fleet_reader.reader_of); None: the per-user file cache."""

