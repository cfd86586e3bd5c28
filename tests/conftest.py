"""Shared fixtures: the repository root on sys.path and a helper that runs the real
program under Pulumi's mocks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meshops.review.offline import ProgramRun, run_program, stack_config  # noqa: E402

STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))


def stack_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["config"]


ACKNOWLEDGED = {"acknowledgeUnsupported": True}
"""Tests run the program as stacks of any name (staging, prod, ...): outside dev/test stacks the
config must acknowledge that Google does not support the in-place change, so the minimal
config does, unless a test's own `gke-mesh:migration` says otherwise
(tests/test_google_rules.py tests the refusal)."""


def minimal_config(**overrides: Any) -> dict[str, Any]:
    """A valid stack config (stack-file shape) with overrides applied; a `gke-mesh:migration`
    override is merged over the acknowledgement."""
    values: dict[str, Any] = {
        "gcp:project": "my-project-123456",
        "gke-mesh:releaseChannel": "regular",
        "gke-mesh:clusters": [{"name": "dev-cluster-1", "location": "asia-northeast1"}],
        "gke-mesh:migration": dict(ACKNOWLEDGED),
    }
    migration = overrides.pop("gke-mesh:migration", None)
    values.update(overrides)
    if isinstance(migration, dict):
        values["gke-mesh:migration"] = {**ACKNOWLEDGED, **migration}
    elif migration is not None:
        values["gke-mesh:migration"] = migration
    return values


def run(values: dict[str, Any], stack: str = "test", invokes=None, preview: bool = True, extra_outputs=None) -> ProgramRun:
    from meshops.review.offline import EchoMocks, RecordingMonitor

    monitor = RecordingMonitor(EchoMocks(extra_outputs=extra_outputs))
    return run_program(stack_config(values), stack, invokes, monitor=monitor, preview=preview)


@pytest.fixture
def run_stack():
    return run


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path_factory, monkeypatch):
    """A fleet-answers cache of this test only (meshops.cluster.fleet_reader FileCache.private):
    steps of the same user share the per-user folder by design (a real `pulumi up` polling
    the same project), so another test's, or another run's, answer for the same project
    would otherwise reach this one."""
    folder = tmp_path_factory.mktemp("xdg-runtime")
    folder.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder
