"""Shared fixtures: the repository root on sys.path and a helper that runs the real
program under Pulumi's mocks."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meshops.review.offline import ProgramRun, run_program, stack_config  # noqa: E402

# Runs of the migration chain made while test modules are imported (test_cli_argv's and
# test_migration_chain's) happen outside private_runtime_dir below: give them a fleet-answers
# cache of this process, not the user's (~/.cache/gke-mesh), which every other run on the
# machine shares (an answer younger than 21 s from another run changes what wait-ready
# calls, and so what is collected, differently in each xdist worker).
_COLLECTION_RUNTIME_DIR = tempfile.mkdtemp(prefix="gke-mesh-xdg-")
os.environ["XDG_RUNTIME_DIR"] = _COLLECTION_RUNTIME_DIR
atexit.register(shutil.rmtree, _COLLECTION_RUNTIME_DIR, True)

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


# Under pytest-xdist (`make test` runs -n auto --dist worksteal): the few tests that take
# most of the time start first, so no worker is left finishing one of them alone while the
# others are idle. Order only, and only in xdist workers (every worker sorts the same way,
# as xdist requires); a serial run keeps the file order. Seconds as measured serially on
# 2 cores under load; a renamed test just loses its head start.
SLOWEST_FIRST = (
    "tests/test_scale.py::test_a_hundred_clusters_one_at_a_time_do_not_exhaust_the_sdks_cycle_check",  # 38-68 s
    "tests/test_operator_sequences.py::test_operator_sequences",  # 30 s
    "tests/test_scale.py::test_critical_path_does_not_grow_with_the_number_of_clusters",  # 9-32 s
    "tests/test_review.py::test_mermaid_of_sixty_clusters_fits_mermaids_limit",  # 5-19 s each
    "tests/test_hostile_input.py::test_any_value_is_refused_cleanly_or_leaves_every_argv_shape_intact",  # 4-8 s
    "tests/test_determinism.py::test_plan_is_byte_identical_across_machines",  # 3 s each
)


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):
        return

    def rank(item) -> int:
        return next((i for i, prefix in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(prefix)), len(SLOWEST_FIRST))

    items.sort(key=rank)
