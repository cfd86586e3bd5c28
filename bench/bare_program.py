"""The bare-resource floor for bench/plan_scale.py: BENCH_COUNT custom resources with a
few inputs each, no components, no dependencies."""

import os

import pulumi

for index in range(int(os.environ["BENCH_COUNT"])):
    pulumi.CustomResource("bench:index:Bare", f"bare-{index}", {"index": index, "name": f"bare-{index}", "tags": ["a", "b"]})
