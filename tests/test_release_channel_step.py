"""The release-channel step against a fake gcloud: idempotent, verified, clear failures."""

from __future__ import annotations

import json

import pytest

from meshops.cluster.process import StepFailed, Tools
from meshops.context import ContextError, StepContext, StepInput
from meshops.steps import release_channel

CTX = StepContext(project="my-project-123456", location="asia-northeast1", cluster="dev-cluster-1",
                  fleet_project="my-project-123456", membership="dev-cluster-1",
                  membership_location="asia-northeast1", channel="regular")
INP = StepInput(CTX)


def run_step(fake):
    return release_channel.run(INP, Tools(runner=fake, log=lambda line: None))


class FakeGcloud:
    """Answers describe/update for one cluster and records every argv."""

    def __init__(self, channel: str | None, apply_updates: bool = True, describe_text: str | None = None):
        self.channel, self.apply_updates, self.describe_text = channel, apply_updates, describe_text
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[3] == "describe":
            if self.describe_text is not None:
                return self.describe_text
            return json.dumps({"name": argv[4], "releaseChannel": {"channel": self.channel.upper()} if self.channel else {}})
        if argv[3] == "update":
            if self.apply_updates:
                self.channel = [a for a in argv if a.startswith("--release-channel=")][0].split("=", 1)[1]
            return ""
        raise AssertionError(f"unexpected call {argv}")


def test_already_on_target_changes_nothing():
    fake = FakeGcloud("regular")
    assert run_step(fake) == {"cluster": "dev-cluster-1", "channel": "regular", "changed": False}
    assert [c[3] for c in fake.calls] == ["describe"]


@pytest.mark.parametrize("before", ["rapid", "stable", None])
def test_moves_and_verifies(before):
    fake = FakeGcloud(before)
    result = run_step(fake)
    assert result["changed"] is True and result["from"] == (before or "unspecified")
    assert [c[3] for c in fake.calls] == ["describe", "update", "describe"]
    assert fake.calls[1] == release_channel.commands(INP)[1]
    assert fake.channel == "regular"


def test_update_that_did_not_take_fails_clearly():
    with pytest.raises(StepFailed, match="release channel is rapid after the update, expected regular"):
        run_step(FakeGcloud("rapid", apply_updates=False))


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_malformed_describe_output_is_a_step_failure(text):
    with pytest.raises(StepFailed):
        run_step(FakeGcloud("rapid", describe_text=text))


def test_environment_round_trip_and_refusal():
    assert StepContext.from_environment(CTX.environment()) == CTX
    broken = {**CTX.environment(), "GKE_MESH_CLUSTER": "x; rm -rf /"}
    with pytest.raises(ContextError, match="GKE_MESH_CLUSTER"):
        StepContext.from_environment(broken)
    with pytest.raises(ContextError, match="GKE_MESH_CHANNEL"):
        StepContext.from_environment({k: v for k, v in CTX.environment().items() if k != "GKE_MESH_CHANNEL"})
