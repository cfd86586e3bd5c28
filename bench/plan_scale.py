"""Offline plan cost for 1, 10, 100 and 300 clusters, next to two floors measured in the
same run: importing the program's modules alone, and registering the same number of bare
resources under the same mocks. Every figure is the median of REPEAT fresh processes
(wall time inside the process, so interpreter start-up is excluded from all three).

    venv/bin/python bench/plan_scale.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 10, 100, 300)
REPEAT = 3


def stack_file(folder: Path, clusters: int) -> Path:
    projects = ["my-project-123456", "fleet-apps-234567", "fleet-data-345678"]
    config = {
        "gcp:project": projects[0],
        "gke-mesh:releaseChannel": "regular",
        "gke-mesh:clusters": [{"name": f"cluster-{i}", "location": ["asia-northeast1", "europe-west4-b", "us-central1"][i % 3],
                               "project": projects[i % 3]} for i in range(clusters)],
    }
    path = folder / f"Pulumi.bench{clusters}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def measure(mode: str, argument: str = "") -> dict:
    runs = []
    for _ in range(REPEAT):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "_measure.py"), mode, argument],
                              capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs),
            "resources": runs[0]["resources"]}


def main() -> None:
    floor = measure("import")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            plan = measure("plan", str(stack_file(Path(folder), size)))
            bare = measure("bare", str(plan["resources"]))
            rows.append((size, plan, bare))
    print(f"import floor: {floor['seconds']:.2f} s, {floor['peak_mb']:.0f} MB")
    print("| clusters | resources | plan s | plan MB | bare s | plan/import | plan/bare |")
    print("|---|---|---|---|---|---|---|")
    for size, plan, bare in rows:
        print(f"| {size} | {plan['resources']} | {plan['seconds']:.2f} | {plan['peak_mb']:.0f} | {bare['seconds']:.2f} | "
              f"{plan['seconds'] / floor['seconds']:.2f} | {plan['seconds'] / bare['seconds']:.2f} |")
    (s1, p1, _), (s2, p2, _) = rows[-2], rows[-1]
    print(f"marginal cost per cluster ({s1}->{s2}): {(p2['seconds'] - p1['seconds']) / (s2 - s1) * 1000:.1f} ms, "
          f"{(p2['peak_mb'] - p1['peak_mb']) / (s2 - s1):.2f} MB")


if __name__ == "__main__":
    main()
