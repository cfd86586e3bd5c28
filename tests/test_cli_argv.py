"""Every gcloud/kubectl argv the steps make is accepted by the real CLI's parser: the
argv listed by the plan and the argv a full migration makes against the fake world."""

from __future__ import annotations

import os
import tempfile

import pytest

from meshops.context import Options
from meshops.review.plan import build_plan
from tests.chain_driver import Chain, context
from tests.cli_parsers import parse_check, why_unavailable
from tests.conftest import STACK_FILES
from tests.fake_world import FakeWorld, seed_field_report


def shape(argv: list[str]) -> tuple:
    """Command words and flag names: one parser check per shape keeps this fast."""
    words = tuple(a for a in argv if not a.startswith("-"))[:4]
    return argv[0], words, tuple(sorted(a.split("=", 1)[0] for a in argv if a.startswith("-")))


def migration_calls() -> list[list[str]]:
    """Every call of a full migration of the cluster of the June 2025 Zenn write-up
    'GKE Service Mesh のリリースチャンネル変更と再インストール手順', with real values."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            world = FakeWorld(gcs_root=None)
            seed_field_report(world)
            Chain(world, context(), Options(stack="dev", remove_authorization_policies=True)).up()
        finally:
            os.chdir(here)
    return world.calls


def commands() -> list[list[str]]:
    seen: dict[tuple, list[str]] = {}
    planned = [argv for path in STACK_FILES for r in build_plan(path)["resources"] for argv in r["commands"]]
    for argv in [*migration_calls(), *planned]:
        if not any(a.startswith("<") and a.endswith(">") and a != argv[-1] for a in argv[:2]):
            seen.setdefault(shape(argv), argv)
    return list(seen.values())


COMMANDS = commands()


def test_both_clis_are_covered():
    assert {argv[0] for argv in COMMANDS} == {"gcloud", "kubectl"}
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(x for x in a[:6] if not x.startswith("--kubeconfig")))
def test_argv_is_accepted_by_the_real_parser(argv):
    reason = why_unavailable(argv[0])
    if reason:
        pytest.skip(reason)
    accepted, stderr = parse_check(argv)
    assert accepted, f"{argv} rejected: {stderr.strip()[:300]}"


@pytest.mark.parametrize("argv", [
    ["gcloud", "container", "clusters", "update", "c1", "--release-chanel=regular"],
    ["kubectl", "--kubeconfig=x", "get", "pods", "--all-namespace"],
    ["kubectl", "--kubeconfig=x", "rollout", "restart", "--namespace=a"],
], ids=["gcloud-typo", "kubectl-typo", "kubectl-missing-resource"])
def test_the_checker_rejects_malformed_argv(argv):
    reason = why_unavailable(argv[0])
    if reason:
        pytest.skip(reason)
    accepted, _ = parse_check(argv)
    assert not accepted
