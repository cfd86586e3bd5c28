"""Against a real project and cluster: read-only steps only (preflight, the plan).

Runs when GKE_MESH_E2E_PROJECT, GKE_MESH_E2E_LOCATION and GKE_MESH_E2E_CLUSTER are set
(optionally GKE_MESH_E2E_MEMBERSHIP, GKE_MESH_E2E_CHANNEL) and gcloud has credentials;
otherwise every test here is skipped, with the reason. Run with `pytest -m e2e`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from meshops.context import StepContext
from meshops.steps import environment_for
from meshops.context import Options
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def _missing() -> str | None:
    needed = ("GKE_MESH_E2E_PROJECT", "GKE_MESH_E2E_LOCATION", "GKE_MESH_E2E_CLUSTER")
    unset = [n for n in needed if not os.environ.get(n)]
    if unset:
        return f"e2e needs {', '.join(unset)}"
    if shutil.which("gcloud") is None:
        return "e2e needs gcloud"
    token = subprocess.run(["gcloud", "auth", "print-access-token"], capture_output=True, timeout=60)
    if token.returncode != 0:
        return "e2e needs gcloud credentials (gcloud auth login)"
    return None


@pytest.fixture(scope="module")
def real_context() -> StepContext:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    env = os.environ
    location = env["GKE_MESH_E2E_LOCATION"]
    return StepContext(project=env["GKE_MESH_E2E_PROJECT"], location=location, cluster=env["GKE_MESH_E2E_CLUSTER"],
                       fleet_project=env["GKE_MESH_E2E_PROJECT"], membership=env.get("GKE_MESH_E2E_MEMBERSHIP", env["GKE_MESH_E2E_CLUSTER"]),
                       membership_location=env.get("GKE_MESH_E2E_MEMBERSHIP_LOCATION", location.rsplit("-", 1)[0] if location.count("-") == 2 else location),
                       channel=env.get("GKE_MESH_E2E_CHANNEL", "regular"))


def test_preflight_reads_a_real_cluster_and_decides(real_context):
    env = {**os.environ, **environment_for("preflight", real_context, Options()), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "meshops", "preflight"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["action"] in ("migrate", "skip")
    assert decision["membership"] == real_context.membership
