"""The shared fleet reader: one describe per project per MIN_AGE, across steps and processes."""

from __future__ import annotations

import os
import sys

import pytest

from meshops.fleet_reader import MIN_AGE, FileCache, FleetReader, MemoryCache

ROOT_BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, argv):
        self.calls += 1
        return '{"membershipStates": {}, "n": %d}' % self.calls


def test_readers_sharing_a_cache_fetch_once_per_min_age():
    runner, clock = Counter(), [0.0]
    cache = MemoryCache()
    readers = [FleetReader(runner, lambda: clock[0], cache) for _ in range(5)]
    assert {r.describe("p")["n"] for r in readers} == {1}
    clock[0] = MIN_AGE - 0.1
    assert readers[0].describe("p")["n"] == 1
    clock[0] = MIN_AGE + 0.1
    assert readers[3].describe("p")["n"] == 2 and runner.calls == 2
    assert readers[0].describe("other-project")["n"] == 3, "one answer per project"


def test_file_cache_is_shared_between_processes(tmp_path):
    runner, clock = Counter(), [100.0]
    first = FleetReader(runner, lambda: clock[0], FileCache(tmp_path))
    second = FleetReader(runner, lambda: clock[0], FileCache(tmp_path))
    first.describe("p")
    assert second.describe("p")["n"] == 1 and runner.calls == 1
    assert second.refresh_in("p") == pytest.approx(MIN_AGE)


def test_a_cache_folder_others_can_write_is_never_used(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    folder = tmp_path / f"gke-mesh-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert isinstance(FileCache.private(), MemoryCache)
    folder.chmod(0o700)
    assert isinstance(FileCache.private(), FileCache)


def test_many_clusters_of_one_project_share_the_describes():
    sys.path.insert(0, ROOT_BENCH)
    try:
        from wait_ready import simulate
    finally:
        sys.path.remove(ROOT_BENCH)
    one, many = simulate(1, 1200.0), simulate(30, 1200.0)
    assert one["describes"] <= 60 and many["describes"] <= 62
    assert many["max_delay"] <= 30 and one["max_delay"] <= 30
    stalled = simulate(5, 600.0, connectgateway=False)
    assert all(polls == 1 for _, polls, _ in stalled["failed"].values()), "STALLED reported on the first poll"
