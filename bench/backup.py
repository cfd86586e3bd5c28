"""Backup and restore of 10, 1 000 and 10 000 Istio objects in the fake cluster, within a
whole migration: CLI calls made (they must grow with the number of kinds, not of
objects) and wall time of the two steps.

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

from meshops.cluster.execute import execute  # noqa: E402
from meshops.context import Options  # noqa: E402
from tests.chain_driver import Chain, context  # noqa: E402
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
                seconds: dict[str, float] = {}

                def timed(words, env, tools):
                    start = time.perf_counter()
                    try:
                        return execute(words, env, tools)
                    finally:
                        seconds[words[0]] = seconds.get(words[0], 0.0) + time.perf_counter() - start

                chain = Chain(world, context(), Options(stack="bench"), executor=timed)
                results = chain.up()
            finally:
                os.chdir(here)
        assert results["backup"]["objects"] == size and results["restore"]["restored"] == size
        kinds = len(KINDS)
        backup_calls, restore_calls = chain.calls_by_step["backup"], chain.calls_by_step["restore"]
        print(f"| {size} | {kinds} | {backup_calls} | {seconds['backup']:.2f} | {restore_calls} | {seconds['restore']:.2f} | "
              f"{backup_calls / kinds:.2f} |")


if __name__ == "__main__":
    main()
