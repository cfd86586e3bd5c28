"""The plan of a stack as it was at a git ref: the stack file *and* the program at that
ref, planned by that ref's own code (so a program change shows up too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from meshops.review.offline import ROOT


class BaseError(Exception):
    """The base ref cannot be planned; the message is one line."""


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
        raise BaseError(f"git {args[0]}: {last}")
    return done.stdout


def plan_at_ref(ref: str, config: Path, stack: str) -> dict[str, Any] | None:
    """The base plan, or None when the stack file did not exist at `ref` (all creates)."""
    if ref.startswith("-"):
        raise BaseError(f"--base {ref!r} is not a git ref")
    try:
        _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except BaseError:
        raise BaseError(f"--base {ref!r} is not a commit in this repository (fetch it first, e.g. git fetch origin main)") from None
    try:
        relative = config.resolve().relative_to(ROOT)
    except ValueError:
        raise BaseError(f"--config {config} is outside the repository; --base compares files tracked in git") from None
    listed = _git("ls-tree", "--name-only", ref, "--", relative.as_posix()).decode().strip()
    if not listed:
        return None
    with tempfile.TemporaryDirectory(prefix="gke-mesh-base-") as folder:
        with tarfile.open(fileobj=BytesIO(_git("archive", "--format=tar", ref)), mode="r:") as archive:
            archive.extractall(folder, filter="data")
        env = {**os.environ, "PYTHONPATH": folder}
        done = subprocess.run([sys.executable, "-m", "meshops", "plan", "--config", relative.as_posix(), "--stack", stack,
                               "--format", "json"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise BaseError(f"--base {ref}: the plan at that ref failed: {last}")
    return json.loads(done.stdout)
