"""Check argv lists against the real gcloud and kubectl argument parsers, offline.

Each command runs under `unshare -n` (no network namespace: nothing can leave the
machine) with an empty gcloud config (no account) and an unreachable kube API server.
A well-formed argv gets past the parser and then fails for want of credentials or a
server; a malformed one fails in the parser. We tell the two apart by the messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

_PARSER_ERRORS = ("unrecognized arguments", "argument ", "Invalid choice", "unknown flag", "unknown command",
                  "unknown shorthand flag", "accepts ", "requires at least", "invalid argument")


def why_unavailable(binary: str) -> str | None:
    """None when the check can run; otherwise the reason to skip."""
    if shutil.which(binary) is None:
        return f"{binary} is not installed on this machine"
    if shutil.which("unshare") is None:
        return "unshare is not available to cut the network"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return "unshare -n is not permitted here (needs root or user namespaces)"
    return None


def parse_check(argv: list[str]) -> tuple[bool, str]:
    """(accepted by the parser, stderr)."""
    with tempfile.TemporaryDirectory() as config_dir:
        env = {**os.environ, "CLOUDSDK_CONFIG": config_dir, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
               "KUBECONFIG": os.path.join(config_dir, "none")}
        extra = ["--server=https://127.0.0.1:9", "--request-timeout=2s"] if argv[0] == "kubectl" and "--kubeconfig" not in " ".join(argv) else []
        done = subprocess.run(["unshare", "-n", *argv, *extra], capture_output=True, text=True, env=env, timeout=120)
    stderr = done.stderr
    rejected = done.returncode == 2 and argv[0] == "gcloud" or any(marker in stderr for marker in _PARSER_ERRORS)
    return (not rejected), stderr
