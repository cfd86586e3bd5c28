"""The migration's own cost, per cluster, in the fake world (tests/fake_world.py) on its
simulated clock: the cluster of the June 2025 Zenn write-up
'GKE Service Mesh のリリースチャンネル変更と再インストール手順' (2 injected namespaces, STRICT mTLS, an
AuthorizationPolicy) moved rapid -> regular by the program's own step resources
(tests/chain_driver.py), with Google's provisioning taking PROVISIONING seconds.

The fake answers instantly, so a CLI call is charged on the clock: GCLOUD_SECONDS per
gcloud call (its start-up), KUBECTL_SECONDS per kubectl call. Sleeps (wait-ready's
polling, purge's re-check rounds, verify's retries) advance the clock as they would.
Kubernetes' own time (pods starting, `rollout status` waiting) is not modelled: like
provisioning it is not ours, and it adds to the outage window below.

Figures per cluster:
- outage window: from the first workload restarted without a sidecar to the moment the
  last one runs on the new revision with every PeerAuthentication and AuthorizationPolicy
  back as it was (the cluster's state is checked after every CLI call);
- security relaxed: from the first policy changed (relax-security) to all of them back;
- overhead: the chain's duration minus the provisioning time, split into sleeps outside
  provisioning, CLI time outside provisioning, and the rest;
- CLI calls by gcloud and kubectl.

The stack-level figures are computed from the per-cluster ones and the chaining rule of
components/platform.py batch_gate: with maxParallel m, cluster i's chain starts after
cluster i-m's verify; chains are otherwise independent (the engine's own `--parallel`
limit and shared fleet polling are not modelled).

    venv/bin/python bench/outage_window.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshops.context import Options, revision_of  # noqa: E402
from tests.chain_driver import Chain, context  # noqa: E402
from tests.fake_world import GATEWAY_TEMPLATE, FakeWorld, seed_field_report  # noqa: E402

PROVISIONING = 600.0
GCLOUD_SECONDS = 1.0
KUBECTL_SECONDS = 0.3
CLUSTERS = (1, 10, 100)
TARGET_OVERHEAD = 120.0
TARGET_GCLOUD = 40
SECURITY = ("peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io")


class TimedWorld(FakeWorld):
    """The fake world with CLI calls charged on the clock and every call and sleep attributed to a step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step = "-"
        self.events: list[tuple[float, str, str, float]] = []  # (clock after, step, "gcloud"|"kubectl"|"sleep", seconds)
        self.watch = None

    def __call__(self, argv, input=None):
        argv = list(argv)
        cost = GCLOUD_SECONDS if argv[0] == "gcloud" else KUBECTL_SECONDS
        self.clock += cost
        try:
            return super().__call__(argv, input)
        finally:
            self.events.append((self.clock, self.step, argv[0], cost))
            if self.watch:
                self.watch(self.clock)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.events.append((self.clock, self.step, "sleep", seconds))


class TimedChain(Chain):
    def _run(self, name, action, command, env):
        self.world.step = name
        try:
            return super()._run(name, action, command, env)
        finally:
            self.world.step = "-"


def security_of(cluster) -> dict:
    return {key: json.dumps(obj.get("spec"), sort_keys=True) for key, obj in cluster.objects.items() if key[0] in SECURITY}


def migrate(backup_uri: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            world = TimedWorld(gcs_root=Path(folder) / "gcs")
            world.provisioning_seconds = PROVISIONING
            world.log = []
            cluster = seed_field_report(world)
            target = revision_of("regular")
            injected = {key[1] for key, pod in cluster.objects.items() if key[0] == "pods"
                        and "sidecar.istio.io/status" in pod["metadata"]["annotations"]}
            policies = security_of(cluster)
            marks: dict[str, float] = {}

            def app_pods():
                return [pod for key, pod in cluster.objects.items() if key[0] == "pods" and key[1] in injected
                        and (pod["metadata"]["annotations"].get(GATEWAY_TEMPLATE) != "gateway")]

            def watch(now: float) -> None:
                pods = app_pods()
                status = [json.loads(p["metadata"]["annotations"].get("sidecar.istio.io/status", "null") or "null") for p in pods]
                if "outage_start" not in marks and any(s is None for s in status):
                    marks["outage_start"] = now
                secure = security_of(cluster) == policies
                if "relaxed_start" not in marks and not secure:
                    marks["relaxed_start"] = now
                if "relaxed_start" in marks and "relaxed_end" not in marks and secure:
                    marks["relaxed_end"] = now
                if ("outage_start" in marks and "outage_end" not in marks and secure and pods
                        and all(s and s.get("revision") == target for s in status)):
                    marks["outage_end"] = now

            world.watch = watch
            chain = TimedChain(world, context(), Options(stack="bench", backup_uri=backup_uri))
            start = world.clock
            result = chain.up()
            assert result["verify"]["verified"] is True, result["verify"]
            end = world.clock
        finally:
            os.chdir(here)
    member = next(iter(world.memberships.values()))
    provisioning = (member.provisioning_started, member.provisioning_started + PROVISIONING)

    def outside(at: float, seconds: float) -> float:
        """The part of an event (ending at `at`, lasting `seconds`) outside Google's provisioning."""
        begin = at - seconds
        inside = max(0.0, min(at, provisioning[1]) - max(begin, provisioning[0]))
        return seconds - inside

    per_step: dict[str, Counter] = {}
    for at, step, kind, seconds in world.events:
        counts = per_step.setdefault(step, Counter())
        counts[kind] += 1 if kind != "sleep" else 0
        counts[f"{kind}_s"] += seconds
        counts[f"{kind}_outside_s"] += outside(at, seconds)
    total = Counter()
    for counts in per_step.values():
        total.update(counts)
    duration = end - start
    return {"duration": duration, "overhead": duration - PROVISIONING, "marks": marks, "per_step": per_step, "total": total,
            "outage": marks["outage_end"] - marks["outage_start"], "relaxed": marks["relaxed_end"] - marks["relaxed_start"],
            "outage_offset": marks["outage_start"] - start}


def stack_level(one: dict, clusters: int, max_parallel: int) -> dict:
    """From one cluster's figures and batch_gate's rule: cluster i starts after cluster i-m verified."""
    waves = math.ceil(clusters / max_parallel)
    return {"span": (waves - 1) * one["duration"] + one["outage"],
            "any_out": waves * one["outage"], "at_once": min(clusters, max_parallel),
            "migration": waves * one["duration"]}


def main() -> None:
    runs = {uri: migrate(uri) for uri in ("backups", "gs://mesh-backups/moves")}
    one = runs["backups"]
    print(f"per cluster (provisioning {PROVISIONING:.0f} s; gcloud {GCLOUD_SECONDS} s, kubectl {KUBECTL_SECONDS} s per call)\n")
    print("| backupUri | chain | outage window | security relaxed | overhead beyond provisioning | sleeps outside provisioning | "
          "CLI time outside provisioning | gcloud | kubectl |")
    print("|---|---|---|---|---|---|---|---|---|")
    for uri, r in runs.items():
        t = r["total"]
        print(f"| {uri} | {r['duration']:.0f} s | {r['outage']:.0f} s | {r['relaxed']:.0f} s | {r['overhead']:.0f} s "
              f"(target ≤ {TARGET_OVERHEAD:.0f}: {'met' if r['overhead'] <= TARGET_OVERHEAD else 'NOT met'}) | "
              f"{t['sleep_outside_s']:.0f} s | {t['gcloud_outside_s'] + t['kubectl_outside_s']:.0f} s | "
              f"{t['gcloud']} (target ≤ {TARGET_GCLOUD}: {'met' if t['gcloud'] <= TARGET_GCLOUD else 'NOT met'}) | {t['kubectl']} |")
    print("\nper step, local backup (seconds on the clock; 'outside' = not overlapping provisioning)\n")
    print("| step | gcloud | kubectl | CLI s | sleeps s | outside provisioning s |")
    print("|---|---|---|---|---|---|")
    for step, c in one["per_step"].items():
        outside = c["gcloud_outside_s"] + c["kubectl_outside_s"] + c["sleep_outside_s"]
        print(f"| {step} | {c['gcloud']} | {c['kubectl']} | {c['gcloud_s'] + c['kubectl_s']:.1f} | {c['sleep_s']:.0f} | {outside:.1f} |")
    m = one["marks"]
    print(f"\noutage from {m['outage_start']:.0f} s to {m['outage_end']:.0f} s after the chain started; "
          f"security relaxed from {m['relaxed_start']:.0f} s to {m['relaxed_end']:.0f} s")
    print("\nstack level (local backup; computed from the per-cluster figures and batch_gate)\n")
    print("| clusters | maxParallel | clusters out at once | time with some cluster out | first outage start → last outage end | whole migration |")
    print("|---|---|---|---|---|---|")
    for n in CLUSTERS:
        for m_par, label in ((1, "1 (default)"), *(((n, f"{n} (all at once)"),) if n > 1 else ())):
            s = stack_level(one, n, m_par)
            print(f"| {n} | {label} | {s['at_once']} | {s['any_out']:.0f} s ({s['any_out'] / 3600:.1f} h) | "
                  f"{s['span']:.0f} s ({s['span'] / 3600:.1f} h) | {s['migration']:.0f} s ({s['migration'] / 3600:.1f} h) |")


if __name__ == "__main__":
    main()
