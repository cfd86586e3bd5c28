"""Run one measurement in this fresh process; print {"seconds", "peak_mb", "resources"}."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(mode: str, argument: str) -> None:
    start = time.perf_counter()
    count = 0
    if mode == "import":
        # The modules the bench stacks' program loads, and the provider classes it uses:
        # pulumi_gcp loads submodules lazily, on first attribute access, so touch each one.
        # (pulumi_kubernetes is left out: only meshNamespaces loads it, and these stacks have none.)
        import pulumi_command
        from pulumi_gcp import gkehub, projects

        import components.platform  # noqa: F401
        import meshops.review.plan  # noqa: F401

        for used in (gkehub.Feature, gkehub.FeatureMembership, gkehub.get_membership_output, projects.Service,
                     pulumi_command.local.Command):
            assert used is not None
    elif mode == "bare":
        import os

        from meshops.review.offline import run_program

        os.environ["BENCH_COUNT"] = argument
        count = len(run_program({}, "bench", main_file=ROOT / "bench" / "bare_program.py").registrations)
    elif mode == "plan":
        from meshops.review.plan import build_plan, render_json

        document = build_plan(Path(argument))
        render_json(document)
        count = len(document["resources"])
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 3), "peak_mb": round(peak_mb, 1), "resources": count}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
