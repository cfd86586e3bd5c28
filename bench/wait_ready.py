"""wait-ready at fleet scale, on a simulated clock against the fake fleet: describe calls
made per project, the delay between the control plane turning ACTIVE and each cluster's
step noticing it, for provisioning times of 2 to 30 minutes and 1 to 100 clusters of one
project polling at the same time (sharing one fleet answer cache, as their processes do),
and the time to report STALLED.

    venv/bin/python bench/wait_ready.py
"""

from __future__ import annotations

import heapq
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshops.cluster.fleet_reader import MemoryCache  # noqa: E402
from meshops.cluster.process import StepFailed  # noqa: E402
from meshops.context import Decision, Options, StepContext, StepInput, revision_of  # noqa: E402
from meshops.steps.wait_ready import Waiter  # noqa: E402
from tests.fake_world import FakeWorld  # noqa: E402

PROVISIONING_MINUTES = (2, 5, 10, 20, 30)
CLUSTER_COUNTS = (1, 10, 100)


def fleet(clusters: int, provisioning_seconds: float, connectgateway: bool = True) -> tuple[FakeWorld, list[StepInput], list[float]]:
    """Clusters reach wait-ready at different moments in the first minute (their earlier
    steps take different times); each one's provisioning starts when it does."""
    world = FakeWorld()
    world.provisioning_seconds = provisioning_seconds
    if not connectgateway:
        world.enabled_apis.discard("connectgateway.googleapis.com")
    inputs, starts = [], [random.Random(1000 + i).uniform(0, 60) if clusters > 1 else 0.0 for i in range(clusters)]
    for i in range(clusters):
        name = f"c{i}"
        world.add_cluster(name, "asia-northeast1", "regular", mesh=True)
        member = world.memberships[("asia-northeast1", name)]
        member.provisioning_started, member.revision = starts[i], revision_of("regular")
        ctx = StepContext(project=world.fleet_project, location="asia-northeast1", cluster=name, fleet_project=world.fleet_project,
                          membership=name, membership_location="asia-northeast1", channel="regular")
        decision = Decision("migrate", "bench", "rapid", "regular", "asm-managed-rapid", "asm-managed", name, "ISTIOD", "bench")
        inputs.append(StepInput(ctx, Options(wait_timeout_seconds=3600), decision))
    return world, inputs, starts


def simulate(clusters: int, provisioning_seconds: float, connectgateway: bool = True) -> dict:
    """Events (each cluster's polls) run in simulated-time order; one shared answer cache."""
    world, inputs, starts = fleet(clusters, provisioning_seconds, connectgateway)
    world.log = _Discard()
    cache = MemoryCache()
    waiters = []
    for i, inp in enumerate(inputs):
        world.clock = starts[i]
        tools = world.tools(cache=cache)
        tools.random = random.Random(i).random
        waiters.append(Waiter(inp, tools))
    queue = [(starts[i], i) for i in range(len(waiters))]
    heapq.heapify(queue)
    noticed, failed = {}, {}
    while queue:
        at, index = heapq.heappop(queue)
        world.clock = at
        try:
            outcome = waiters[index].poll()
        except StepFailed as error:
            failed[index] = (at, waiters[index].polls, str(error))
            continue
        if isinstance(outcome, dict):
            noticed[index] = at
        else:
            heapq.heappush(queue, (at + outcome, index))
    describes = sum(1 for call in world.calls if call[1:5] == ["container", "fleet", "mesh", "describe"])
    delays = [t - (starts[i] + provisioning_seconds) for i, t in noticed.items()]
    window = max(noticed.values(), default=0.0) - min(starts)
    return {"describes": describes, "window": window, "max_delay": max(delays, default=float("nan")),
            "mean_delay": sum(delays) / len(delays) if delays else float("nan"),
            "polls": max(w.polls for w in waiters), "failed": failed, "starts": starts}


class _Discard(list):
    def append(self, item) -> None:  # the progress lines are not the point here
        pass


def main() -> None:
    start = time.perf_counter()
    print("| provisioning | clusters | describe calls | polling window | max ACTIVE→noticed | mean | polls per cluster |")
    print("|---|---|---|---|---|---|---|")
    for minutes in PROVISIONING_MINUTES:
        for clusters in CLUSTER_COUNTS:
            r = simulate(clusters, minutes * 60.0)
            print(f"| {minutes} min | {clusters} | {r['describes']} | {r['window']:.0f} s | {r['max_delay']:.1f} s | "
                  f"{r['mean_delay']:.1f} s | {r['polls']} |")
    stalled = simulate(10, 600.0, connectgateway=False)
    (at, polls, message) = stalled["failed"][0]
    print(f"STALLED (connectgateway off, 10 clusters): cluster 0 reported it {at - stalled['starts'][0]:.0f} s after it started "
          f"waiting, on poll {polls}; {len(stalled['failed'])} clusters failed; {stalled['describes']} describe calls")
    print(f"  {message[:150]}")
    print(f"bench wall time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
