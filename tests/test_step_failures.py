"""How every step fails when its CLIs do: missing, not authenticated, 403, malformed
output. Always one line naming the step, the cluster and what to do; never a traceback.
(A timeout is covered in test_step_process.py; resuming after any failure in
test_migration_chain.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from meshops.cluster.trust import KEY_ENV
from meshops.context import BACKUP_KEY, DECISION_KEY, Options
from meshops.steps import STEPS, environment_for
from tests.chain_driver import Cancelled, Chain, context
from tests.conftest import ROOT
from tests.fake_world import FakeWorld, seed_field_report

FAILURES = {
    "missing": (None, "is not on PATH"),
    "unauthenticated": ('echo "ERROR: (gcloud) You do not currently have an active account selected." >&2; exit 1',
                        "authenticate: `gcloud auth login`"),
    "forbidden": ('echo "ERROR: (gcloud) PERMISSION_DENIED: Permission denied (403)" >&2; echo "Error from server (Forbidden)" >&2; exit 1',
                  "lacks a role or RBAC permission"),
    "malformed-json": ("echo 'this is not json'", "not JSON"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A project folder holding a verified backup of this run, as a real run would."""
    folder = tmp_path_factory.mktemp("project")
    here = os.getcwd()
    os.chdir(folder)
    try:
        world = FakeWorld()
        seed_field_report(world)
        chain = Chain(world, context(), Options(stack="dev"))
        with pytest.raises(Cancelled):
            chain.up(stop_after="backup")
    finally:
        os.chdir(here)
    return folder, chain.state["preflight"].stdout, chain.state["backup"].stdout, chain.state["stack-key"].stdout


# The management switches print nothing that is parsed, so malformed output cannot hurt them.
CASES = [(step, failure) for step in sorted(STEPS) for failure in sorted(FAILURES)
         if not (failure == "malformed-json" and step in ("disable-management", "enable-management"))]


@pytest.mark.parametrize("step,failure", CASES, ids=[f"{s}-{f}" for s, f in CASES])
def test_step_failure_is_one_clear_line(step, failure, workdir, tmp_path):
    folder, decision, backup_result, key = workdir
    script, expected = FAILURES[failure]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if script is not None:
        for cli in ("gcloud", "kubectl"):
            (bin_dir / cli).write_text("#!/bin/sh\n" + textwrap.dedent(script) + "\n")
            (bin_dir / cli).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin" if script else str(bin_dir), "PYTHONPATH": str(ROOT),
           "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"],  # this test's fleet-answers cache (conftest.py)
           # backup gets a stack with no backup yet, or it would reuse the verified one
           **environment_for(step, context(), Options(stack="fresh" if step == "backup" else "dev")), KEY_ENV: key}
    if STEPS[step].NEEDS_DECISION:
        env[DECISION_KEY] = decision
    if STEPS[step].NEEDS_BACKUP:
        env[BACKUP_KEY] = backup_result
    done = subprocess.run([sys.executable, "-m", "meshops", step], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"meshops {step} [dev-cluster-1]: "), done.stderr
    assert expected in done.stderr, done.stderr
    assert done.stderr.rstrip().endswith("it resumes at this step")
    assert json.loads(decision)["action"] == "migrate"
