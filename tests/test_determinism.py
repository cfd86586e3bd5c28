"""docs/architecture.md invariant 2: the same config registers byte-identical inputs on any machine.

The plan (every registered input of every resource) is produced twice in separate
processes that differ in working directory, HOME, user, PATH, locale, time zone and hash
seed; the second also runs as another Unix user when that is possible here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, STACK_FILES


def plan_in(env_changes: dict[str, str], cwd, config, as_nobody: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PULUMI"))}
    env.update(env_changes)
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "meshops", "plan", "--config", str(config)]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def can_run_as_nobody() -> bool:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                            f"import sys; sys.path.insert(0, {str(ROOT)!r}); import meshops.review.plan"],
                           capture_output=True, cwd="/")
    return probe.returncode == 0


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_plan_is_byte_identical_across_machines(path, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    first = plan_in({"HOME": str(tmp_path / "home-a"), "USER": "alice", "LOGNAME": "alice", "LANG": "C.UTF-8",
                     "TZ": "UTC", "PYTHONHASHSEED": "1"}, tmp_path / "a", path)
    second = plan_in({"HOME": str(tmp_path / "home-b"), "USER": "bob", "LOGNAME": "bob", "LANG": "en_US.UTF-8",
                      "LC_ALL": "C", "TZ": "Asia/Tokyo", "PYTHONHASHSEED": "4242",
                      "PATH": f"/opt/elsewhere/bin:{os.environ['PATH']}"}, tmp_path / "b" / "deeper", path,
                     as_nobody=can_run_as_nobody())
    assert first == second
    for marker in (str(tmp_path), "alice", "bob", "home-a", "home-b"):
        assert marker not in first, f"{marker} leaked into registered inputs"
