"""Steps as `pulumi up` runs them: `python3 -m meshops <step>` with a fake gcloud on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from meshops.cluster.process import StepFailed, run
from tests.conftest import ROOT
from tests.test_release_channel_step import CTX


def fake_bin(tmp_path, name: str, script: str):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return tmp_path


def step(name: str, env: dict[str, str], path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshops", name], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": path, "PYTHONPATH": str(ROOT), **env}, timeout=60)


def test_release_channel_step_end_to_end_with_fake_gcloud(tmp_path):
    log = tmp_path / "calls.log"
    bin_dir = fake_bin(tmp_path, "gcloud", f"""
        echo "$@" >> {log}
        case "$3" in
          describe) echo '{{"releaseChannel": {{"channel": "REGULAR"}}}}' ;;
          *) echo "unexpected" >&2; exit 3 ;;
        esac
    """)
    done = step("release-channel", CTX.environment(), f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert '"changed": false' in done.stdout
    assert log.read_text().splitlines() == ["container clusters describe dev-cluster-1 --project=my-project-123456 "
                                            "--location=asia-northeast1 --format=json"]


def test_step_without_its_environment_fails_in_one_line():
    done = step("release-channel", {}, "/usr/bin:/bin")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "GKE_MESH_" in done.stderr and "Traceback" not in done.stderr


def test_missing_gcloud_is_named_with_what_to_do(tmp_path):
    done = step("release-channel", CTX.environment(), str(tmp_path))
    assert done.returncode == 1
    assert "gcloud is not on PATH" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize("script,expected", [
    ('echo "ERROR: (gcloud) PERMISSION_DENIED: 403 caller lacks container.clusters.get" >&2; exit 1', "exit 1): ERROR: (gcloud) PERMISSION_DENIED: 403"),
    ('echo "ERROR: You do not currently have an active account selected." >&2; exit 1', "active account"),
    ("echo '{not json'", "not JSON"),
])
def test_cli_failures_are_one_line(tmp_path, script, expected):
    bin_dir = fake_bin(tmp_path, "gcloud", script + "\n")
    done = step("release-channel", CTX.environment(), f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 1
    assert expected in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_timeout_is_reported_not_hung(tmp_path, monkeypatch):
    bin_dir = fake_bin(tmp_path, "slowcli", "sleep 5\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(StepFailed, match="did not finish within 1s"):
        run(["slowcli"], timeout=1)


def test_decision_steps_refuse_to_run_without_a_decision(tmp_path):
    done = step("purge", CTX.environment(), "/usr/bin:/bin")
    assert done.returncode == 1 and "GKE_MESH_DECISION is missing" in done.stderr and done.stderr.count("\n") == 1


def test_preflight_prints_only_its_decision_on_stdout(monkeypatch, capsys, tmp_path):
    import json

    from meshops import __main__ as cli
    from tests.fake_world import FakeWorld, seed_field_report

    world = FakeWorld()
    seed_field_report(world)
    monkeypatch.setattr(cli, "Tools", world.tools)
    from meshops.cluster.trust import KEY_ENV, new_key_result

    for key, value in CTX.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(KEY_ENV, new_key_result())
    assert cli.main(["preflight"]) == 0
    out = capsys.readouterr().out
    decision = json.loads(out)
    assert decision["action"] == "migrate" and decision["from_revision"] == "asm-managed-rapid"
    assert out.count("\n") == 1, "stdout is the decision alone: later steps read it from Pulumi state"


def test_steps_need_nothing_beyond_the_standard_library():
    """`pulumi up` runs steps with whatever python3 is on PATH, so no step may import a
    third-party package: import every step with site-packages switched off (-S)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import meshops.__main__, meshops.steps; "
            "from meshops.steps import STEPS; print(len(STEPS))")
    done = subprocess.run([sys.executable, "-S", "-c", code, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "13"
    assert "pulumi" not in subprocess.run([sys.executable, "-S", "-c", code + "; print(sorted(m for m in sys.modules if m.startswith(('pulumi', 'yaml', 'ruamel'))))",
                                           str(ROOT)], capture_output=True, text=True, timeout=60).stdout


def test_kubectl_gets_its_private_kubeconfig_as_kubeconfig_too(tmp_path, monkeypatch):
    """Issue "Delivery you can trust" item 12: the auth plugin's token cache follows
    KUBECONFIG, not --kubeconfig; a step's kubectl must not share ~/.kube's cache."""
    from meshops.cluster.process import run

    fake = tmp_path / "kubectl"
    fake.write_text('#!/bin/sh\necho "$KUBECONFIG"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("KUBECONFIG", "/home/someone/.kube/config")
    assert run(["kubectl", "--kubeconfig=/tmp/gke-mesh-x/kubeconfig", "get", "pods"]).strip() == "/tmp/gke-mesh-x/kubeconfig"
