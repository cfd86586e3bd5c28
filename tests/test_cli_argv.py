"""Every gcloud/kubectl argv the plan lists is accepted by the real CLI's parser."""

from __future__ import annotations

import pytest

from meshops.plan import build_plan
from tests.cli_parsers import parse_check, why_unavailable
from tests.conftest import STACK_FILES


def shape(argv: list[str]) -> tuple:
    """Command words and flag names: one parser check per shape keeps this fast."""
    words = tuple(a for a in argv if not a.startswith("-"))[:4]
    return words, tuple(sorted(a.split("=", 1)[0] for a in argv if a.startswith("-")))


def planned_commands() -> list[list[str]]:
    seen: dict[tuple, list[str]] = {}
    for path in STACK_FILES:
        for resource in build_plan(path)["resources"]:
            for argv in resource["commands"]:
                seen.setdefault(shape(argv), argv)
    return list(seen.values())


COMMANDS = planned_commands()


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:4]))
def test_planned_argv_is_accepted_by_the_real_parser(argv):
    reason = why_unavailable(argv[0])
    if reason:
        pytest.skip(reason)
    accepted, stderr = parse_check(argv)
    assert accepted, f"{argv} rejected: {stderr.strip()[:300]}"


def test_the_checker_rejects_a_misspelt_flag():
    reason = why_unavailable("gcloud")
    if reason:
        pytest.skip(reason)
    accepted, _ = parse_check(["gcloud", "container", "clusters", "update", "c1", "--release-chanel=regular"])
    assert not accepted
