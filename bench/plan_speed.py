"""`make plan STACK=<stack>` against the import floor, paired and alternating: each round
runs the floor, then the plan of every tree (e.g. before and after a change) in a rotating
order, each as a fresh process timed from outside (interpreter start-up included, as a
user waits for it). Reports the median seconds and the median of the per-round ratios.

    venv/bin/python bench/plan_speed.py [--rounds 15] [--before GIT_REF] [--stacks dev,prod]

`--before GIT_REF` exports that ref's tree (git archive) to a temporary folder and plans
it with the same venv, so the change is measured against its own floor in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / "venv" / "bin" / "python")
FLOOR = [PYTHON, "-c", "import pulumi, pulumi_command, pulumi_gcp; from pulumi_gcp import gkehub, projects"]


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def plan(tree: Path, stack: str) -> list[str]:
    return ["make", "-s", "-C", str(tree), "plan", f"STACK={stack}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", metavar="GIT_REF")
    parser.add_argument("--stacks", default="dev,prod")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trees = {"after": ROOT}
        if args.before:
            before = Path(folder) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            (before / "venv").symlink_to(ROOT / "venv")
            for name in ("requirements.txt", "requirements-dev.txt"):  # the venv's stamps must stay newer: no pip run
                if (before / name).exists():
                    os.utime(before / name, (0, 0))
            trees = {"before": before, **trees}
        subjects = [(name, stack) for stack in args.stacks.split(",") for name in trees]
        for name, stack in subjects:  # warm the page cache and the .pyc files once
            timed(plan(trees[name], stack), trees[name])
        floors, times = [], {s: [] for s in subjects}
        ratios = {s: [] for s in subjects}
        for round_number in range(args.rounds):
            floor = timed(FLOOR, ROOT)
            floors.append(floor)
            shift = round_number % len(subjects)
            for name, stack in subjects[shift:] + subjects[:shift]:
                seconds = timed(plan(trees[name], stack), trees[name])
                times[(name, stack)].append(seconds)
                ratios[(name, stack)].append(seconds / floor)
    print(f"{args.rounds} rounds; import floor median {statistics.median(floors):.3f} s "
          f"(min {min(floors):.3f}, max {max(floors):.3f})")
    print("| stack | tree | plan s (median) | min | max | plan / floor (median of paired ratios) |")
    print("|---|---|---|---|---|---|")
    for (name, stack), values in times.items():
        print(f"| {stack} | {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} | "
              f"{statistics.median(ratios[(name, stack)]):.2f}× |")


if __name__ == "__main__":
    sys.exit(main())
