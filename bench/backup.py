"""Backup and restore of 10, 1 000 and 10 000 Istio objects in the fake cluster: CLI calls
made (they must grow with the number of kinds, not of objects) and wall time.

    venv/bin/python bench/backup.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshops.context import Decision, Options, StepInput  # noqa: E402
from meshops.steps import backup, restore  # noqa: E402
from tests.chain_driver import context  # noqa: E402
from tests.fake_world import ISTIO_KINDS, FakeWorld, seed_field_report  # noqa: E402

SIZES = (10, 1_000, 10_000)
KINDS = [f"{plural}.{group}" for group, kinds in ISTIO_KINDS.items() for plural, _ in kinds]


def cluster_with(objects: int) -> FakeWorld:
    world = FakeWorld()
    cluster = seed_field_report(world)
    for i in range(objects - len(cluster.istio_objects())):
        resource = KINDS[i % len(KINDS)]
        cluster.put(resource, {"metadata": {"name": f"obj-{i}", "namespace": "katayan", "labels": {"bench": "yes"}},
                               "spec": {"hosts": [f"h{i}.example.com"], "index": i}})
    return world


def main() -> None:
    print("| objects | kinds | backup calls | backup s | restore calls | restore s | calls per kind (backup) |")
    print("|---|---|---|---|---|---|---|")
    for size in SIZES:
        with tempfile.TemporaryDirectory() as folder:
            here = os.getcwd()
            os.chdir(folder)
            try:
                world = cluster_with(size)
                decision = Decision("migrate", "bench", "rapid", "regular", "asm-managed-rapid", "asm-managed", "dev-cluster-1", "ISTIOD", "bench")
                inp = StepInput(context(), Options(stack="bench"), decision)
                start, calls = time.perf_counter(), len(world.calls)
                result = backup.run(inp, world.tools())
                backup_seconds, backup_calls = time.perf_counter() - start, len(world.calls) - calls
                start, calls = time.perf_counter(), len(world.calls)
                restored = restore.run(inp, world.tools())
                restore_seconds, restore_calls = time.perf_counter() - start, len(world.calls) - calls
            finally:
                os.chdir(here)
        assert result["objects"] == size and restored["restored"] == size, (result["objects"], restored["restored"])
        kinds = len(KINDS)
        print(f"| {size} | {kinds} | {backup_calls} | {backup_seconds:.2f} | {restore_calls} | {restore_seconds:.2f} | "
              f"{backup_calls / kinds:.2f} |")


if __name__ == "__main__":
    main()
