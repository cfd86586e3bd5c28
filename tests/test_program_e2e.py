"""The project's real program under the real Pulumi engine, with the real gcloud against the
Google API emulator and the real kubectl against a real API server whose managed control
plane really injects sidecars (testbed/program_e2e.py runs it; issue "Run it for real").

Two scenarios, one bed each. `run` (about 4 minutes), on a stack gated on the stage before
it (a second stack in the same backend): adopt, the gate refusing, preview, a channel change
refused once by GKE after the teardown, the resumed run, a no-op run, an ordinary run while
the stage before is ahead, an option edit, destroy. `paths` (about 7 minutes), the "nothing
lost" issue's operator paths: a run stopped after relax-security, a teammate's change, a
fresh CI runner resuming and stopping after the teardown, the PR reverted, a second stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import engine_chain

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
NEW_SIDECAR = "gcr.io/gke-release/asm/proxyv2:1.20.8-asm.33"  # regular's proxy (tests/fake_world.py PROXY_VERSIONS)
OLD_SIDECAR = "gcr.io/gke-release/asm/proxyv2:1.22.1-asm.1"


def _missing() -> list[str]:
    missing = engine_chain.missing_binaries()
    try:
        from testbed.kube_server import build_dir
        build_dir()
    except Exception as error:  # no Go toolchain or module proxy: the kube build is unavailable
        missing.append(f"kube testbed ({error})")
    return missing


def scenario(tmp_path_factory, name: str) -> dict[str, dict]:
    """Run testbed/program_e2e.py's scenario `name` with the network cut; its steps by name."""
    missing = _missing()
    if missing:
        pytest.skip("testbed not built: " + "; ".join(missing))
    scratch = tmp_path_factory.mktemp(f"program-e2e-{name}")
    out = scratch / "result.json"
    cut, note = engine_chain.network_cut_argv()
    done = subprocess.run([*cut, sys.executable, "-m", "testbed.program_e2e", "--scenario", name,
                           "--out", str(out), "--scratch", str(scratch / "bed")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.exists(), f"no result ({note}): {done.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert not result["error"], result["error"]
    print(f"program e2e {name}: {result['seconds']} s ({note})")
    for step in result["steps"]:
        print(f"  {step['name']}: ok={step.get('ok')} {step.get('seconds')} s {step.get('summary')} channel={step.get('channel')}")
    return {step["name"]: step for step in result["steps"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, dict]:
    return scenario(tmp_path_factory, "rapid-to-regular")


def test_adopting_a_cluster_already_on_its_channel_changes_neither_cluster_nor_fleet(run):
    adopt = run["adopt on rapid"]
    assert adopt["ok"], adopt["error"]
    assert adopt["summary"].get("import") == 1, "the fleet's servicemesh Feature is imported, not created"
    # What remains are the provider's idempotent writes: enabling already-enabled APIs and
    # the FeatureMembership writing the management the membership already has.
    assert all(":enable" in m or m.startswith("PATCH /gkehub/v1/projects/my-project-123456/locations/global/features/servicemesh")
               for m in adopt["mutating"]), adopt["mutating"]
    assert adopt["after"] == run["seeded"]["after"], "no pod restarted, no object or label changed"
    assert adopt["outputs"]["clusters"]["dev-cluster-1"]["release_channel"] == "rapid"


def test_the_gate_refuses_an_unverified_channel_with_one_line_and_changes_nothing(run):
    refused = run["gate refuses rapid -> regular"]
    assert not refused["ok"]
    assert ("gke-mesh:promotion: stage organization/gke-mesh/upstream has not verified regular on cluster upstream-cluster"
            in refused["error"]), refused["error"][-1500:]
    assert "Traceback" not in refused["error"]
    assert not refused["mutating"] and refused["after"] == run["seeded"]["after"]


def test_an_ordinary_run_goes_through_while_the_stage_before_is_ahead(run):
    ordinary = run["ordinary run while the stage before is ahead"]
    assert ordinary["ok"], ordinary["error"][-1500:]
    assert not ordinary["mutating"]


def test_the_preview_shows_the_whole_chain_replaced_and_changes_nothing(run):
    preview = run["preview rapid -> regular"]
    assert preview["ok"], preview["error"]
    assert preview["summary"].get("replace") == 13, preview["summary"]  # 12 steps + the release channel
    assert not preview["mutating"] and preview["after"] == run["seeded"]["after"]


def test_a_channel_change_refused_after_the_teardown_stops_and_the_next_up_resumes(run):
    refused = run["rapid -> regular, channel change refused once"]
    assert not refused["ok"] and "the channel change is refused once" in refused["error"]
    assert not any(m.startswith("PATCH /gkehub/v2") and "automatic" in m for m in refused["mutating"])
    resumed = run["rapid -> regular, resumed"]
    assert resumed["ok"], resumed["error"]
    assert any(m.startswith("PUT /container/v1/") for m in resumed["mutating"]), "the channel change ran again"
    last = resumed["outputs"]["clusters"]["dev-cluster-1"]["last_verify"]
    assert (last["verified"], last["control_plane_state"], last["revision"]) == (True, "ACTIVE", "asm-managed")


def test_nothing_is_lost_across_the_move(run):
    before, after = run["seeded"]["after"], run["rapid -> regular, resumed"]["after"]
    assert after["istio"] == before["istio"], "every Istio object is back with the same spec"
    assert after["peer_authentication"] == before["peer_authentication"] == {"istio-system/default": "STRICT", "katayan/web": "STRICT"}
    assert {p["sidecar"] for p in before["pods"].values()} == {OLD_SIDECAR}
    assert {p["sidecar"] for p in after["pods"].values()} == {NEW_SIDECAR}, "every workload runs the new revision's proxy"
    assert {p.split("/")[0] for p in after["pods"]} == {p.split("/")[0] for p in before["pods"]}
    assert all(labels for labels in after["labels"].values()), "both namespaces are injected again"


def test_running_again_or_editing_an_option_runs_nothing(run):
    for name in ("again", "option edit after success"):
        step = run[name]
        assert step["ok"], step["error"]
        assert not step["mutating"], f"{name}: {step['mutating']}"
        assert step["after"]["pods"] == run["rapid -> regular, resumed"]["after"]["pods"], f"{name}: no pod restarted"


def test_destroy_leaves_the_cluster_and_the_mesh_alone(run):
    destroy = run["destroy"]
    assert destroy["ok"], destroy["error"]
    assert not destroy["mutating"], destroy["mutating"]
    assert destroy["after"]["pods"] == run["rapid -> regular, resumed"]["after"]["pods"]
    assert destroy["after"]["istio"] == run["seeded"]["after"]["istio"]


def engine_changes(step: dict) -> dict[str, str]:
    """Resource name -> the engine's change, from its per-resource events."""
    changes: dict[str, str] = {}
    for _type, name, op in step["steps"]:
        if op in ("read", "refresh"):  # the gate's StackReferences are reads, not changes
            continue
        kind = {"create-replacement": "replace", "delete-replaced": "replace", "replace": "replace"}.get(op, op)
        if changes.get(name) != "replace":
            changes[name] = kind
    return changes


def offline_changes(tmp_path: Path, base: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """The offline plan's change per resource name for the same two configurations."""
    import yaml

    from meshops.review.diff import annotate
    from meshops.review.plan import build_plan

    def stack_file(name: str, config: dict[str, str]) -> Path:
        values = {key: (json.loads(v) if key in ("gke-mesh:clusters", "gke-mesh:migration") else v) for key, v in config.items()}
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": values}))
        return path

    plan = annotate(build_plan(stack_file("base", base), "e2e"), build_plan(stack_file("new", new), "e2e"))
    return {r["name"]: r["change"] for r in plan["resources"] if r["change"] != "none"}


@pytest.mark.parametrize("step,base,new", [
    ("preview rapid -> regular", {}, {"releaseChannel": "regular"}),
    ("option edit after success", {"releaseChannel": "regular"}, {"releaseChannel": "regular", "waitTimeout": "20m"}),
], ids=["channel change", "option edit"])
def test_the_offline_plan_agrees_with_the_real_engine(run, tmp_path, step, base, new):
    from testbed.program_e2e import stack_config

    def config(edit: dict[str, str]) -> dict[str, str]:
        extra = {k: v for k, v in edit.items() if k != "releaseChannel"}
        return stack_config(edit.get("releaseChannel", "rapid"), extra or None, gated=True)

    assert offline_changes(tmp_path, config(base), config(new)) == engine_changes(run[step])


# ---------------------------------------------------------------------------- operator paths
@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, dict]:
    return scenario(tmp_path_factory, "operator-paths")


def test_a_run_stopped_after_relaxing_security_leaves_it_relaxed_and_the_channel_untouched(paths):
    stopped = paths["stopped after relax-security"]
    assert not stopped["ok"] and "management switch refused once" in stopped["error"]
    assert stopped["channel"] == "rapid"
    assert set(stopped["after"]["peer_authentication"].values()) == {"PERMISSIVE"}, "relaxed, as the runbook says"
    assert stopped["after"]["istio"].keys() == paths["seeded"]["after"]["istio"].keys()


def test_a_fresh_runner_resumes_from_the_bucket_and_stops_after_the_teardown(paths):
    resumed = paths["fresh runner: stopped after the purge"]
    assert not resumed["ok"] and "registration refused once" in resumed["error"]
    assert resumed["channel"] == "regular", "the channel change ran on the new runner"
    assert not resumed["after"]["istio"], "torn down: the CRDs and their objects are gone"


def test_reverting_the_pr_mid_migration_brings_everything_back_including_the_teammates_change(paths):
    reverted = paths["PR reverted: back to rapid"]
    assert reverted["ok"], reverted["error"][-2000:]
    assert reverted["channel"] == "rapid"
    late = "VirtualService/katayan/late-change"
    # As seeded (the teammate's snapshot was taken while security was relaxed), plus the teammate's change.
    expected = {**paths["seeded"]["after"]["istio"], late: paths["teammate added a VirtualService"]["after"]["istio"][late]}
    assert reverted["after"]["istio"] == expected, "every object, the teammate's late change included"
    assert reverted["after"]["peer_authentication"] == {"istio-system/default": "STRICT", "katayan/web": "STRICT"}
    assert {p["sidecar"] for p in reverted["after"]["pods"].values()} == {OLD_SIDECAR}
    last = reverted["outputs"]["clusters"]["dev-cluster-1"]["last_verify"]
    assert (last["verified"], last["revision"]) == (True, "asm-managed-rapid")
    again = paths["again on rapid"]
    assert again["ok"] and not again["mutating"]


def test_a_second_stack_cannot_take_the_cluster(paths):
    intruder = paths["a second stack on the same cluster"]
    assert not intruder["ok"] and "is claimed by stack organization/gke-mesh/e2e" in intruder["error"], intruder["error"][-1500:]
    # Its APIs are enabled (idempotent, before its guard runs); nothing of the cluster or the fleet changes.
    assert all(m.endswith(":enable") for m in intruder["mutating"]), intruder["mutating"]
    assert intruder["after"] == paths["again on rapid"]["after"]
