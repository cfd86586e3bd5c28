"""The shared fleet reader: one describe per project per MIN_AGE, across steps and processes."""

from __future__ import annotations

import os
import sys

import pytest

from meshops.cluster.fleet_reader import MIN_AGE, FileCache, FleetReader, MemoryCache

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
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = tmp_path / "gke-mesh"
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


def test_a_failure_is_never_taken_from_the_shared_cache(tmp_path, monkeypatch):
    """Issue "Delivery you can trust" item 10: the failed run cached STALLED; the operator
    enables connectgateway and re-runs at once; wait-ready must ask the fleet again before
    failing, not diagnose the cached answer."""
    from meshops.cluster.fleet_reader import MemoryCache
    from meshops.context import Options
    from tests.chain_driver import Chain, context
    from tests.fake_world import FakeWorld, seed_field_report

    monkeypatch.chdir(tmp_path)
    world = FakeWorld()
    seed_field_report(world)
    shared = MemoryCache()
    world.tools = (lambda original: (lambda cache=None: original(cache=shared)))(world.tools)  # one runner's file cache
    chain = Chain(world, context(), Options(stack="dev"))
    world.enabled_apis.discard("connectgateway.googleapis.com")
    try:
        chain.up()
    except Exception as error:  # noqa: BLE001 - the STALLED failure
        assert "REVISION_STALLED" in str(error)
    world.enabled_apis.add("connectgateway.googleapis.com")  # the fix; the cached answer still says STALLED
    assert chain.up()["verify"]["verified"] is True


def test_the_cache_folder_is_never_a_link(tmp_path, monkeypatch):
    """Issue "Delivery you can trust" item 11: a planted symlink where the cache folder goes
    (and a folder others can read) are refused; a memory cache is used instead."""
    from meshops.cluster.fleet_reader import FileCache, MemoryCache

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "run" / "gke-mesh").symlink_to(tmp_path / "elsewhere")
    assert isinstance(FileCache.private(), MemoryCache)
    (tmp_path / "run" / "gke-mesh").unlink()
    (tmp_path / "run" / "gke-mesh").mkdir(mode=0o755)
    assert isinstance(FileCache.private(), MemoryCache), "readable by others"
    (tmp_path / "run" / "gke-mesh").chmod(0o700)
    private = FileCache.private()
    assert isinstance(private, FileCache) and private.folder == tmp_path / "run" / "gke-mesh"
