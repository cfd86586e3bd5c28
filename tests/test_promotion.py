"""Stack-per-environment promotion: the gate, `meshops promote` and `meshops rollout`."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import threading
import time

import pytest

from components.settings import ConfigError, parse_settings
from meshops.promotion.promote import PromoteError, promote
from meshops.promotion.rollout import RolloutError, StackResult, parse_waves, rollout
from meshops.review.offline import EchoMocks, RecordingMonitor, run_program, stack_config
from tests.conftest import ROOT, minimal_config

GOLDEN = ROOT / "tests" / "golden"
DEV = "organization/gke-mesh/dev"
VERIFIED = {"release_channel": "regular", "clusters": {"dev-cluster-1": {
    "project": "my-project-123456", "location": "asia-northeast1", "membership": "dev-cluster-1", "membership_location": "asia-northeast1",
    "release_channel": "regular", "last_verify": {
        "verified": True, "run_id": "20261126T010000Z", "control_plane_state": "ACTIVE", "data_plane_state": "ACTIVE",
        "revision": "asm-managed", "implementation": "ISTIOD", "proxy_images": {"gcr.io/gke-release/asm/proxyv2:1.20.8-asm.33": 4}}}}}


def gated(**promotion):
    return minimal_config(**{"gke-mesh:promotion": {"after": DEV, **promotion}})


def run_gated(values, outputs):
    monitor = RecordingMonitor(EchoMocks())
    stack_outputs = {DEV: outputs} if outputs is not None else {}
    try:
        run_program(stack_config(values), "staging", monitor=monitor, stack_outputs=stack_outputs)
    finally:
        registered = [r.type for r in monitor.registrations]
    return registered


def test_verified_previous_stage_lets_the_stack_through():
    registered = run_gated(gated(), VERIFIED)
    assert "pulumi:pulumi:StackReference" in registered
    assert "gcp:gkehub/featureMembership:FeatureMembership" in registered


def broken(path: list[str], value):
    outputs = copy.deepcopy(VERIFIED)
    node = outputs
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return outputs


@pytest.mark.parametrize("outputs,expected", [
    (broken(["clusters", "dev-cluster-1", "last_verify", "verified"], False),
     "stage organization/gke-mesh/dev has not verified regular on cluster dev-cluster-1: control plane ACTIVE and verified False at its last verify"),
    (broken(["clusters", "dev-cluster-1", "last_verify", "control_plane_state"], "PROVISIONING"),
     "stage organization/gke-mesh/dev has not verified regular on cluster dev-cluster-1: control plane PROVISIONING and verified True at its last verify"),
    (broken(["clusters", "dev-cluster-1", "release_channel"], "rapid"),
     "stage organization/gke-mesh/dev has no cluster on regular (its clusters target rapid)"),
    (broken(["clusters"], {}), "stage organization/gke-mesh/dev reports no clusters"),
    ({}, "stage organization/gke-mesh/dev has no outputs; has it been deployed (pulumi up) with this program?"),
])
def test_gate_refuses_with_one_line_before_registering_anything(outputs, expected):
    monitor = RecordingMonitor(EchoMocks())
    with pytest.raises(ConfigError) as raised:
        run_program(stack_config(gated()), "staging", monitor=monitor, stack_outputs={DEV: outputs})
    assert str(raised.value) == (f"gke-mesh:promotion: {expected} (moving dev-cluster-1 to regular); promote only after it "
                                 "verifies, or set gke-mesh:promotion.force with a reason (also to resume a migration already "
                                 "under way here: see README, When a migration fails)")
    assert {r.type for r in monitor.registrations} == {"pulumi:pulumi:StackReference"}, "only reads of stacks"


STAGING = "organization/gke-mesh/staging"


def deployed(channel_by_cluster: dict[str, str]) -> dict:
    """This stack's own outputs after an earlier `up`."""
    return {"release_channel": "regular", "clusters": {name: {"release_channel": channel} for name, channel in channel_by_cluster.items()}}


def test_an_ordinary_merge_goes_through_while_the_previous_stage_is_ahead():
    ahead = broken(["clusters", "dev-cluster-1", "release_channel"], "stable")  # dev has moved on to stable
    registered = run_gated_with(gated(), {DEV: ahead, STAGING: deployed({"dev-cluster-1": "regular"})})
    assert "gcp:gkehub/featureMembership:FeatureMembership" in registered, "no channel is changing: no gate"


def test_the_gate_applies_when_this_stacks_channel_changes():
    ahead = broken(["clusters", "dev-cluster-1", "release_channel"], "stable")
    with pytest.raises(ConfigError, match=r"has no cluster on regular .*\(moving dev-cluster-1 to regular\)"):
        run_gated_with(gated(), {DEV: ahead, STAGING: deployed({"dev-cluster-1": "rapid"})})


def test_a_per_cluster_channel_is_gated_too():
    values = gated()
    values["gke-mesh:clusters"] = [{"name": "dev-cluster-1", "location": "asia-northeast1"},
                                   {"name": "edge", "location": "asia-northeast1", "releaseChannel": "stable"}]
    this = deployed({"dev-cluster-1": "regular", "edge": "regular"})
    with pytest.raises(ConfigError, match=r"has no cluster on stable \(its clusters target regular\) \(moving edge to stable\)"):
        run_gated_with(values, {DEV: VERIFIED, STAGING: this})
    two = copy.deepcopy(VERIFIED)
    two["clusters"]["dev-edge"] = {**copy.deepcopy(VERIFIED["clusters"]["dev-cluster-1"]), "release_channel": "stable"}
    assert "gcp:gkehub/featureMembership:FeatureMembership" in run_gated_with(values, {DEV: two, STAGING: this})


def run_gated_with(values, stack_outputs):
    monitor = RecordingMonitor(EchoMocks())
    try:
        run_program(stack_config(values), "staging", monitor=monitor, stack_outputs=stack_outputs)
    finally:
        registered = [r.type for r in monitor.registrations]
    return registered


def test_force_needs_a_reason():
    with pytest.raises(ConfigError, match=r"^gke-mesh:promotion.force: true needs a reason"):
        parse_settings(stack_config(gated(force=True)))
    with pytest.raises(ConfigError, match=r"^gke-mesh:promotion.force: there is no gate"):
        parse_settings(stack_config(minimal_config(**{"gke-mesh:promotion": {"force": True, "reason": "x"}})))
    with pytest.raises(ConfigError, match=r"^gke-mesh:promotion.after:"):
        parse_settings(stack_config(minimal_config(**{"gke-mesh:promotion": {"after": "dev"}})))


def test_force_with_reason_warns_and_proceeds(caplog):
    with caplog.at_level(logging.WARNING):
        registered = run_gated(gated(force=True, reason="hotfix INC-123 approved by SRE"), broken(["clusters", "dev-cluster-1", "release_channel"], "rapid"))
    assert "gcp:gkehub/featureMembership:FeatureMembership" in registered
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("promotion gate overridden (force)" in w and "hotfix INC-123 approved by SRE" in w for w in warnings), warnings


def test_offline_without_outputs_warns_that_the_gate_was_not_checked(caplog):
    with caplog.at_level(logging.WARNING):
        registered = run_gated(gated(), None)
    assert "gcp:gkehub/featureMembership:FeatureMembership" in registered
    assert any("promotion gate not checked" in r.getMessage() for r in caplog.records)


def test_example_stacks_chain_dev_staging_prod():
    import yaml

    staging = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())["config"]["gke-mesh:promotion"]
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["gke-mesh:promotion"]
    assert (staging["after"], prod["after"]) == ("organization/gke-mesh/dev", "organization/gke-mesh/staging")
    assert "gke-mesh:promotion" not in yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]


# ------------------------------------------------------------------- promote

SOURCE = "config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: Regular\n  gke-mesh:clusters: [{name: a, location: us-east1}]\n"


@pytest.fixture
def stacks(tmp_path):
    (tmp_path / "Pulumi.staging.yaml").write_text(SOURCE)
    shutil.copy(GOLDEN / "promote-target.before.yaml", tmp_path / "Pulumi.prod.yaml")
    return tmp_path


def outputs_of(channel="regular", verified=True):
    """A reader of the source stack's outputs, as `pulumi stack output --json` would give them."""
    def read(stack):
        outputs = broken(["clusters", "dev-cluster-1", "last_verify", "verified"], verified)
        outputs["release_channel"] = channel
        outputs["clusters"]["dev-cluster-1"]["release_channel"] = channel
        return outputs
    return read


def test_promote_changes_only_the_channel_and_keeps_the_layout(stacks):
    diff = promote("staging", "prod", stacks, outputs_of(), dry_run=False)
    after = (stacks / "Pulumi.prod.yaml").read_text()
    assert after == (GOLDEN / "promote-target.after.yaml").read_text()
    before = (GOLDEN / "promote-target.before.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after.splitlines()) if a != b]
    assert len(before) == len(after.splitlines()) and len(changed) == 1
    body = diff.splitlines()[2:]
    assert [line for line in body if line[:1] in "+-"] == [
        '-  gke-mesh:releaseChannel: "rapid"    # changed only by promote',
        "+  gke-mesh:releaseChannel: regular    # changed only by promote"]


def test_promote_dry_run_writes_nothing(stacks):
    before = (stacks / "Pulumi.prod.yaml").read_text()
    assert promote("staging", "prod", stacks, outputs_of(), dry_run=True)
    assert (stacks / "Pulumi.prod.yaml").read_text() == before


def test_promote_twice_is_a_no_op(stacks):
    promote("staging", "prod", stacks, outputs_of(), dry_run=False)
    assert promote("staging", "prod", stacks, outputs_of(), dry_run=False) == ""


@pytest.mark.parametrize("read,expected", [
    (outputs_of(verified=False), "refusing to promote regular to prod: stage staging has not verified regular"),
    (outputs_of(channel="rapid"), "refusing to promote regular to prod: stage staging has no cluster on regular \\(its clusters target rapid\\)"),
    (lambda stack: {}, "refusing to promote regular to prod: stage staging has no outputs"),
])
def test_promote_refuses_an_unverified_source(stacks, read, expected):
    before = (stacks / "Pulumi.prod.yaml").read_text()
    with pytest.raises(PromoteError, match=expected):
        promote("staging", "prod", stacks, read, dry_run=False)
    assert (stacks / "Pulumi.prod.yaml").read_text() == before


def test_promote_refuses_bad_arguments(stacks):
    with pytest.raises(PromoteError, match="same stack"):
        promote("prod", "prod", stacks, outputs_of(), dry_run=True)
    with pytest.raises(PromoteError, match="cannot read"):
        promote("staging", "qa", stacks, outputs_of(), dry_run=True)
    with pytest.raises(ConfigError, match="^stack name:"):
        promote("../x", "prod", stacks, outputs_of(), dry_run=True)
    (stacks / "Pulumi.qa.yaml").write_text("config:\n  gcp:project: x\n")
    with pytest.raises(PromoteError, match="has no config.gke-mesh:releaseChannel"):
        promote("staging", "qa", stacks, outputs_of(), dry_run=True)


def test_promote_cli_without_pulumi_or_outputs_is_one_clear_line(stacks, monkeypatch, capsys):
    from meshops import __main__ as cli

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["promote", "--from", "staging", "--to", "prod", "--dir", str(stacks)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --source-outputs" in err


def test_promote_cli_with_outputs_file(stacks, capsys):
    from meshops import __main__ as cli

    (stacks / "staging.json").write_text(json.dumps(outputs_of()("staging")))
    assert cli.main(["promote", "--from", "staging", "--to", "prod", "--dir", str(stacks),
                     "--source-outputs", str(stacks / "staging.json"), "--dry-run"]) == 0
    assert "+  gke-mesh:releaseChannel: regular" in capsys.readouterr().out


# ------------------------------------------------------------------- rollout

class FakeWorkspace:
    """Scripted outcomes per stack; records order (`started`: stacks of the action's own
    runs; `calls`: every (stack, action), previews before an up included) and how many ran
    at once."""

    def __init__(self, failing: dict[str, str] | None = None, seconds: float = 0.05, failing_preview: set[str] = frozenset()):
        self.failing, self.seconds, self.failing_preview = failing or {}, seconds, failing_preview
        self.calls: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    @property
    def started(self) -> list[str]:
        ups = [stack for stack, action in self.calls if action == "up"]
        return ups if ups or any(a == "up" for _, a in self.calls) else [stack for stack, _ in self.calls]

    def run(self, stack, action, on_output):
        with self.lock:
            self.calls.append((stack, action))
            self.running += 1
            self.most = max(self.most, self.running)
        on_output(f"{action} of {stack} started")
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        if action == "preview" and stack in self.failing_preview:
            return StackResult(stack, "failed", failed_resource=f"{stack}-c1-preflight", message="policy violation")
        if action == "up" and stack in self.failing:
            return StackResult(stack, "failed", failed_resource=self.failing[stack], message="wait-ready: REVISION_STALLED")
        return StackResult(stack, "succeeded", changes={"same": 20, "replace": 13} if action == "preview" else None)


def yes(previews):
    return True


def test_rollout_runs_stacks_in_order_and_summarises():
    lines: list[str] = []
    workspace = FakeWorkspace()
    results = rollout(parse_waves("dev,staging,prod"), "preview", workspace, 1, lines.append)
    assert workspace.started == ["dev", "staging", "prod"] and workspace.most == 1
    assert [r.status for r in results] == ["succeeded"] * 3
    assert "[dev] preview of dev started" in lines
    assert lines[-1].splitlines()[0] == "| stack | preview | seconds | failed step |"
    assert lines[-1].count("| succeeded |") == 3


def test_rollout_halts_at_the_first_failure_naming_stack_and_step():
    lines: list[str] = []
    workspace = FakeWorkspace(failing={"staging": "staging-osaka-wait-ready"})
    results = rollout(parse_waves("dev,staging,prod"), "up", workspace, 1, lines.append, yes)
    assert workspace.started == ["dev", "staging"]
    assert [(r.stack, r.status) for r in results] == [("dev", "succeeded"), ("staging", "failed"), ("prod", "not run")]
    assert results[1].failed_step == "wait-ready"
    assert "rollout stopped: up of stack staging failed at step wait-ready (staging-osaka-wait-ready): wait-ready: REVISION_STALLED" in lines
    assert "| prod | not run | – | – |" in lines[-1]


def test_waves_run_together_up_to_the_parallel_limit():
    workspace = FakeWorkspace(seconds=0.2)
    results = rollout(parse_waves("a,b,c;d"), "up", workspace, 2, lambda line: None, yes)
    assert workspace.most == 2, "at most --parallel stacks at once, and that many when possible"
    assert workspace.started[-1] == "d" and set(workspace.started[:3]) == {"a", "b", "c"}
    assert all(r.status == "succeeded" for r in results)


def test_a_failed_wave_stops_the_next_wave():
    workspace = FakeWorkspace(failing={"a": "x-verify"})
    results = rollout(parse_waves("a,b;c"), "up", workspace, 2, lambda line: None, yes)
    assert "c" not in workspace.started and {r.stack: r.status for r in results}["c"] == "not run"


@pytest.mark.parametrize("text", ["", "a,,b;", "a;a", "../x", "a;;b"])
def test_bad_stack_lists_are_refused(text):
    with pytest.raises(RolloutError):
        parse_waves(text)


def test_rollout_refuses_a_bad_parallel():
    with pytest.raises(RolloutError, match="--parallel 0"):
        rollout([["a"]], "up", FakeWorkspace(), 0, print, yes)


def test_up_previews_each_wave_first_and_asks_once_per_wave():
    workspace = FakeWorkspace()
    asked: list[list[str]] = []

    def confirm(previews):
        asked.append([r.stack for r in previews])
        assert all(r.changes == {"same": 20, "replace": 13} for r in previews)
        assert {(r.stack, "preview") for r in previews} <= set(workspace.calls)
        assert not any(a == "up" and s in asked[-1] for s, a in workspace.calls), "asked before any up of the wave"
        return True

    results = rollout(parse_waves("dev;stg-a,stg-b;prod"), "up", workspace, 2, lambda line: None, confirm)
    assert asked == [["dev"], ["stg-a", "stg-b"], ["prod"]]
    order = workspace.calls
    assert order[0] == ("dev", "preview") and order[1] == ("dev", "up")
    assert order.index(("prod", "preview")) > max(order.index(("stg-a", "up")), order.index(("stg-b", "up")))
    assert [r.status for r in results] == ["succeeded"] * 4


def test_up_not_confirmed_updates_nothing_more():
    workspace = FakeWorkspace()
    lines: list[str] = []
    answers = iter([True, False])
    results = rollout(parse_waves("dev;staging;prod"), "up", workspace, 1, lines.append, lambda previews: next(answers))
    assert workspace.calls == [("dev", "preview"), ("dev", "up"), ("staging", "preview")]
    assert [(r.stack, r.status) for r in results] == [("dev", "succeeded"), ("staging", "declined"), ("prod", "not run")]
    assert "rollout stopped: the update of staging was not confirmed; nothing was updated in this wave" in lines


def test_a_failed_preview_stops_before_any_up():
    workspace = FakeWorkspace(failing_preview={"staging"})
    lines: list[str] = []
    results = rollout(parse_waves("dev;staging;prod"), "up", workspace, 1, lines.append, yes)
    assert ("staging", "up") not in workspace.calls and ("prod", "preview") not in workspace.calls
    assert [(r.stack, r.status) for r in results] == [("dev", "succeeded"), ("staging", "failed"), ("prod", "not run")]
    assert any("up of stack staging failed at step preflight" in line and "preview before up: policy violation" in line
               for line in lines)


def test_up_without_a_confirmation_is_refused():
    workspace = FakeWorkspace()
    with pytest.raises(RolloutError, match="--yes"):
        rollout(parse_waves("dev"), "up", workspace, 1, print)
    assert workspace.calls == []


def test_terminal_confirmation_needs_a_typed_yes():
    from meshops.promotion.rollout import ask_on_terminal

    previews = [StackResult("prod", "succeeded", changes={"same": 3, "replace": 13, "update": 1})]
    prompts: list[str] = []
    assert ask_on_terminal(lambda prompt: prompts.append(prompt) or "yes")(previews)
    assert "prod: 13 to replace, 1 to update" in prompts[0] and "Update prod?" in prompts[0]
    assert not ask_on_terminal(lambda prompt: "y")(previews)
    assert not ask_on_terminal(lambda prompt: (_ for _ in ()).throw(EOFError()))(previews)


def test_rollout_cli_up_without_a_terminal_or_yes_is_refused(monkeypatch, capsys, tmp_path):
    import io

    import meshops.promotion.rollout as module
    from meshops.__main__ import main

    class NoCli(module.AutomationWorkspace):
        def __init__(self, directory, policy_packs=None):
            self.directory, self.policy_packs = directory, []

    monkeypatch.setattr(module, "AutomationWorkspace", NoCli)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["rollout", "--stacks", "dev", "--action", "up", "--dir", str(tmp_path)]) == 2
    assert "asks before updating it" in capsys.readouterr().err


def test_the_real_workspace_runs_the_policy_pack_and_serialises_select(monkeypatch, tmp_path):
    """AutomationWorkspace with a stand-in for the Automation API: every preview and up gets
    `policy_packs=[<project>/policy]`; select_stack is never entered by two threads at once."""
    import sys
    import types

    from meshops.promotion import rollout as module

    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    with pytest.raises(RolloutError, match="make policy-venv"):
        module.policy_pack(tmp_path)
    (tmp_path / "policy" / "venv").mkdir()
    state = {"selecting": 0, "most": 0, "runs": []}
    lock = threading.Lock()

    class Stack:
        def __init__(self, name):
            self.name = name

        def _run(self, action, **kwargs):
            state["runs"].append((self.name, action, kwargs["policy_packs"]))
            return types.SimpleNamespace(change_summary={"same": 1})

        def preview(self, **kwargs):
            return self._run("preview", **kwargs)

        def up(self, **kwargs):
            return self._run("up", **kwargs)

    def select_stack(stack_name, work_dir):
        with lock:
            state["selecting"] += 1
            state["most"] = max(state["most"], state["selecting"])
        time.sleep(0.05)
        with lock:
            state["selecting"] -= 1
        return Stack(stack_name)

    fake = types.ModuleType("pulumi.automation")
    fake.select_stack = select_stack
    fake.errors = types.SimpleNamespace(CommandError=RuntimeError)
    monkeypatch.setitem(sys.modules, "pulumi.automation", fake)
    monkeypatch.setattr("pulumi.automation", fake, raising=False)
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/pulumi")
    workspace = module.AutomationWorkspace(tmp_path)
    results = rollout(parse_waves("a,b,c,d"), "up", workspace, 4, lambda line: None, yes)
    assert [r.status for r in results] == ["succeeded"] * 4
    assert state["most"] == 1, "select_stack serialised"
    pack = str((tmp_path / "policy").resolve())
    assert sorted(state["runs"]) == sorted((s, a, [pack]) for s in "abcd" for a in ("preview", "up"))


@pytest.mark.e2e
def test_automation_workspace_previews_a_real_stack():
    import os

    from meshops.promotion.rollout import AutomationWorkspace

    if shutil.which("pulumi") is None or not os.environ.get("GKE_MESH_E2E_STACK"):
        pytest.skip("needs the Pulumi CLI and GKE_MESH_E2E_STACK (a stack with credentials)")
    result = AutomationWorkspace(ROOT).run(os.environ["GKE_MESH_E2E_STACK"], "preview", print)
    assert result.status == "succeeded", result.message
