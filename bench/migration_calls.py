"""CLI calls of one whole migration in the fake world (the cluster of the June 2025 Zenn write-up
'GKE Service Mesh のリリースチャンネル変更と再インストール手順'), per step and per CLI, with a local and with a gs:// backup. A gcloud call costs about a
second of start-up on a real runner, so gcloud calls are the number to watch.

    venv/bin/python bench/migration_calls.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshops.context import Options  # noqa: E402
from tests.chain_driver import ORDER, Chain, context  # noqa: E402
from tests.fake_world import FakeWorld, seed_field_report  # noqa: E402


def migrate(backup_uri: str) -> tuple[Counter, dict[str, Counter]]:
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            world = FakeWorld(gcs_root=Path(folder) / "gcs")
            seed_field_report(world)
            per_step: dict[str, Counter] = {}
            chain = Chain(world, context(), Options(stack="bench", backup_uri=backup_uri))
            for step in ORDER:  # one step at a time, to split the calls by step
                before = len(world.calls)
                try:
                    chain.up(stop_after=step)
                except Exception:  # noqa: BLE001 - Cancelled after the step
                    pass
                per_step[step] = Counter(c[0] for c in world.calls[before:])
        finally:
            os.chdir(here)
    return Counter(c[0] for c in world.calls), per_step


def main() -> None:
    for uri in ("backups", "gs://mesh-backups/moves"):
        total, per_step = migrate(uri)
        print(f"\nbackupUri {uri}: {total['gcloud']} gcloud + {total['kubectl']} kubectl calls\n")
        print("| step | gcloud | kubectl |")
        print("|---|---|---|")
        for step, counts in per_step.items():
            print(f"| {step} | {counts['gcloud']} | {counts['kubectl']} |")


if __name__ == "__main__":
    main()
