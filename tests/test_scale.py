"""Many clusters per stack: parallel chains, a constant critical path, the one deliberate
batching exception (maxParallel) and per-cluster overrides."""

from __future__ import annotations

from functools import lru_cache

import pytest

from tests.conftest import minimal_config, run
from tests.graph import Graph


def clusters(n: int, **extra) -> list[dict]:
    projects = ["my-project-123456", "other-project-1", "third-project-2"]
    return [{"name": f"c{i}", "location": ["asia-northeast1", "europe-west4-b", "us-central1"][i % 3],
             "project": projects[i % 3], **extra} for i in range(n)]


@lru_cache(maxsize=None)
def fleet(n: int, max_parallel: int | None = 1000) -> Graph:
    migration = {"maxParallel": max_parallel} if max_parallel else {}
    return Graph(run(minimal_config(**{"gke-mesh:clusters": clusters(n), "gke-mesh:migration": migration})))


def longest_path(g: Graph) -> int:
    memo: dict[str, int] = {}

    def depth(urn: str) -> int:
        if urn not in memo:
            memo[urn] = 1 + max((depth(d) for d in g.by_urn[urn].dependencies if d in g.by_urn), default=0)
        return memo[urn]

    return max(depth(r.urn) for r in g.run.registrations)


def test_critical_path_does_not_grow_with_the_number_of_clusters():
    lengths = {n: longest_path(fleet(n)) for n in (1, 10, 100)}
    assert len(set(lengths.values())) == 1, lengths


def test_no_edge_between_two_clusters():
    g = fleet(10)
    owner = {r.urn: r.name.split("-", 1)[0] for r in g.run.registrations if r.name[:1] == "c" and r.name.split("-", 1)[0][1:].isdigit()}
    for r in g.run.registrations:
        if r.urn in owner:
            foreign = {owner[a] for a in g.ancestors(r) if a in owner} - {owner[r.urn]}
            assert not foreign, f"{r.name} waits for {foreign}"


def test_by_default_clusters_migrate_one_at_a_time():
    g = fleet(4, max_parallel=None)
    for i in range(1, 4):
        earlier = [g.by_urn[d].name for d in g.named(f"c{i}-preflight").dependencies if g.by_urn[d].name.endswith("-verify")]
        assert earlier == [f"c{i - 1}-verify"]
    assert longest_path(g) > longest_path(fleet(4))


def test_a_cluster_that_does_not_migrate_does_not_open_a_second_slot():
    g = Graph(run(minimal_config(**{"gke-mesh:clusters": [
        {"name": "a", "location": "asia-northeast1"},
        {"name": "b", "location": "asia-northeast1", "migration": {"enabled": False}},
        {"name": "c", "location": "asia-northeast1"}]})))
    earlier = [g.by_urn[d].name for d in g.named("c-preflight").dependencies if g.by_urn[d].name.endswith("-verify")]
    assert earlier == ["a-verify"]


def test_max_parallel_chains_batches_and_nothing_else():
    g = fleet(9, max_parallel=3)
    for i in range(9):
        preflight = g.named(f"c{i}-preflight")
        earlier = [d for d in preflight.dependencies if g.by_urn[d].name.endswith("-verify")]
        assert [g.by_urn[d].name for d in earlier] == ([f"c{i - 3}-verify"] if i >= 3 else [])
    assert longest_path(g) > longest_path(fleet(9))


def test_per_cluster_channel_and_migration_overrides():
    g = Graph(run(minimal_config(**{"gke-mesh:clusters": [
        {"name": "a", "location": "asia-northeast1"},
        {"name": "b", "location": "asia-northeast1", "releaseChannel": "STABLE", "migration": {"waitTimeout": "45m", "purgeCrds": False}},
    ]})))
    assert g.named("a-release-channel").inputs["environment"]["GKE_MESH_CHANNEL"] == "regular"
    assert g.named("b-release-channel").inputs["environment"]["GKE_MESH_CHANNEL"] == "stable"
    assert g.named("b-preflight").inputs["triggers"] == ["stable"]
    assert g.named("a-wait-ready").inputs["environment"]["GKE_MESH_WAIT_TIMEOUT_SECONDS"] == "1800"
    assert g.named("b-wait-ready").inputs["environment"]["GKE_MESH_WAIT_TIMEOUT_SECONDS"] == "2700"
    assert g.named("b-purge").inputs["environment"]["GKE_MESH_PURGE_CRDS"] == "false"
    outputs = run(minimal_config(**{"gke-mesh:clusters": [{"name": "b", "location": "asia-northeast1", "releaseChannel": "stable"}]}),
                  preview=False).outputs
    assert outputs["clusters"]["b"]["release_channel"] == "stable" and outputs["release_channel"] == "regular"


def test_a_cluster_can_opt_out_of_the_migration():
    g = Graph(run(minimal_config(**{"gke-mesh:clusters": [
        {"name": "a", "location": "asia-northeast1"}, {"name": "b", "location": "asia-northeast1", "migration": {"enabled": False}}]})))
    names = {r.name for r in g.of_type("command:local:Command")}
    assert "a-preflight" in names and "b-preflight" not in names and "b-release-channel" in names


@pytest.mark.parametrize("override,key", [
    ({"migration": {"maxParallel": 2}}, "gke-mesh:clusters[0].migration.maxParallel"),
    ({"releaseChannel": "extended"}, "gke-mesh:clusters[0].releaseChannel"),
    ({"migration": {"waitTimeout": "1s"}}, "gke-mesh:clusters[0].migration.waitTimeout"),
])
def test_bad_overrides_are_refused_naming_the_key(override, key):
    from components.settings import ConfigError, parse_settings
    from meshops.review.offline import stack_config

    with pytest.raises(ConfigError) as raised:
        parse_settings(stack_config(minimal_config(**{"gke-mesh:clusters": [{"name": "a", "location": "asia-northeast1", **override}]})))
    assert str(raised.value).startswith(key)


def test_max_parallel_is_validated():
    from components.settings import ConfigError, parse_settings
    from meshops.review.offline import stack_config

    with pytest.raises(ConfigError, match=r"^gke-mesh:migration.maxParallel: expected a whole number from 1 to 1000"):
        parse_settings(stack_config(minimal_config(**{"gke-mesh:migration": {"maxParallel": 0}})))


def test_a_hundred_clusters_one_at_a_time_do_not_exhaust_the_sdks_cycle_check():
    """The SDK walks every transitive dependency recursively for each depends_on; one at a
    time chains all clusters (RecursionError at 100 clusters before allow_dependency_depth)."""
    g = fleet(100, max_parallel=None)
    earlier = [g.by_urn[d].name for d in g.named("c99-preflight").dependencies if g.by_urn[d].name.endswith("-verify")]
    assert earlier == ["c98-verify"]
