"""Red team, second day: attacks on what changed today (one cluster at a time by default,
the promotion gate on moving clusters only, gateways through uninject, the adopted Feature).

Every test asserts a README claim; a failing test is a broken claim (see the report for
which ones fail on purpose). Sequences run the program's own resources: the graph from the
real program under mocks (meshops.review.offline), the steps through tests/chain_driver.py against
tests/fake_world.py, and one check on the real engine (marked e2e, skipped when the testbed
is not built).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest

from components.platform import verify_outputs
from components.settings import ConfigError
from meshops.context import Options
from meshops.promotion.promote import PromoteError, promote
from meshops.review.offline import EchoMocks, RecordingMonitor, run_program, stack_config
from tests.chain_driver import Chain, context
from tests.conftest import ROOT, minimal_config, run
from tests.fake_world import FakeWorld, seed_field_report
from tests.graph import Graph
from tests.test_nothing_lost import in_tmp, mesh_view, record_of  # noqa: F401  (in_tmp: autouse, every test runs in its tmp folder)
from tests.test_red_team import attempt

BUCKET = "gs://mesh-backups/moves"
DEV = "organization/gke-mesh/dev"
STAGING = "organization/gke-mesh/staging"
PROD = "organization/gke-mesh/prod"



def lost_mesh(cluster) -> bool:
    """The cluster has no control plane serving it (purged, not provisioned again yet)."""
    return cluster.installed_revision() is None


# ============================================================================ one cluster at a time
# README "Many clusters": "By default they migrate one at a time, so the clusters of one stack
# (prod's two, say) never lose their mesh together: a cluster's preflight waits for the previous
# migrating cluster's verify." The wait is an edge of the *current* program's graph, in the order
# of `gke-mesh:clusters` (components/platform.py batch_gate); nothing at run time knows that
# another cluster of the stack is half-way.

TWO = [{"name": "a", "location": "asia-northeast1"}, {"name": "b", "location": "asia-northeast1"}]


def two_clusters_a_stopped_after_its_purge(tmp_path):
    """prod's two clusters move rapid -> regular; `a` (first in the list) goes first, GKE
    refuses its channel change after the purge (a quota, an operation started in between):
    `a` has no mesh and PERMISSIVE security; `b` has not started (its preflight waits for a's verify)."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    a = seed_field_report(world, name="a")
    b = seed_field_report(world, name="b")
    chain_a = Chain(world, context(cluster="a"), Options(stack="prod", backup_uri=BUCKET), workdir=tmp_path / "runner")
    chain_b = Chain(world, context(cluster="b"), Options(stack="prod", backup_uri=BUCKET), workdir=tmp_path / "runner")
    world.fail(lambda argv: argv[:5] == ["gcloud", "container", "clusters", "update", "a"], "quota exceeded")
    assert "quota exceeded" in attempt(chain_a)
    assert lost_mesh(a) and record_of(a)["phase"] == "purged"
    assert not lost_mesh(b)
    return world, a, b, chain_a, chain_b


def graph(clusters: list[dict]) -> Graph:
    return Graph(run(minimal_config(**{"gke-mesh:clusters": clusters})))


def waits_for(g: Graph, step: str) -> set[str]:
    return {g.by_urn[u].name for u in g.ancestors(g.named(step)) if u in g.by_urn}


EDITS_WHILE_A_IS_STOPPED = {
    # the next PR sorts the list, or puts a new cluster first, or opts `a` out / removes it
    # (both refused by a's guard, README "Abort" -- but only at the end of the deployment)
    "clusters sorted differently": [TWO[1], TWO[0]],
    "a new cluster listed first": [{"name": "c", "location": "asia-northeast1"}, *TWO],
    "a opted out (migration.enabled: false)": [{**TWO[0], "migration": {"enabled": False}}, TWO[1]],
    "a removed from the stack": [TWO[1]],
}


OPEN = ("open: one cluster at a time is an edge of the current graph in list order; nothing at run time "
        "knows another cluster of the stack is half-way (README 'Many clusters' says so)")


@pytest.mark.xfail(strict=True, reason=OPEN)
@pytest.mark.parametrize("edit", sorted(EDITS_WHILE_A_IS_STOPPED))
def test_b_never_starts_while_a_is_half_way(edit):
    """BROKEN. With `a` stopped after its purge, any edit that changes the list order (or takes
    `a` out of the program) leaves another cluster's preflight with no edge to a's verify: the
    engine runs that chain at once, next to a's (or before a's guard refuses its removal)."""
    g = graph(EDITS_WHILE_A_IS_STOPPED[edit])
    for other in sorted(r.name.removesuffix("-preflight") for r in g.of_type("command:local:Command")
                        if r.name.endswith("-preflight") and r.name != "a-preflight"):
        waits = waits_for(g, f"{other}-preflight")
        assert "a-verify" in waits, \
            f"{edit}: {other}'s migration waits for {sorted(n for n in waits if n.endswith('-verify'))}, not a's"


def test_the_list_order_holds_one_at_a_time_when_nothing_is_half_way():
    """HELD (regression): with the list as it was, b waits for a."""
    assert "a-verify" in waits_for(graph(TWO), "b-preflight")


@pytest.mark.xfail(strict=True, reason=OPEN)
def test_two_clusters_of_one_stack_never_lose_their_mesh_together(tmp_path):
    """BROKEN. The sequence end to end: `a` stopped after its purge; the next PR sorts the
    clusters (b first). b's chain has no edge to a's, so the engine may run it to b's purge
    before (or while) a's chain resumes: both clusters of the stack have no mesh."""
    world, a, b, chain_a, chain_b = two_clusters_a_stopped_after_its_purge(tmp_path)
    g = graph([TWO[1], TWO[0]])
    assert not {n for n in waits_for(g, "b-purge") if n.startswith("a-")}, "precondition: b does not wait for a"
    assert attempt(chain_b, stop_after="purge") == "purge"  # an order the engine may choose
    assert not (lost_mesh(a) and lost_mesh(b)), "both clusters of the stack lost their mesh at once"


def test_after_the_sequence_both_clusters_finish_and_nothing_is_lost(tmp_path):
    """HELD (regression): whatever the order, each cluster's own chain still ends equal to its backup."""
    world, a, b, chain_a, chain_b = two_clusters_a_stopped_after_its_purge(tmp_path)
    before_b = mesh_view(b)
    chain_b.up()
    chain_a.up()
    assert mesh_view(b) == before_b and record_of(a) is None and record_of(b) is None
    assert chain_a.results()["verify"]["verified"] is True


# ============================================================================ the promotion gate
VERIFIED_REGULAR = {"release_channel": "regular", "clusters": {"dev-cluster-1": {
    "project": "my-project-123456", "location": "asia-northeast1", "membership": "dev-cluster-1",
    "membership_location": "asia-northeast1", "release_channel": "regular", "last_verify": {
        "verified": True, "run_id": "20261126T010000Z", "control_plane_state": "ACTIVE", "data_plane_state": "ACTIVE",
        "revision": "asm-managed", "implementation": "ISTIOD", "proxy_images": {}}}}}


def stage_on(channel: str, verified: bool = True) -> dict:
    outputs = copy.deepcopy(VERIFIED_REGULAR)
    outputs["release_channel"] = channel
    cluster = outputs["clusters"]["dev-cluster-1"]
    cluster["release_channel"] = channel
    cluster["last_verify"]["verified"] = verified
    cluster["last_verify"]["revision"] = {"rapid": "asm-managed-rapid", "stable": "asm-managed-stable"}.get(channel, "asm-managed")
    return outputs


def deployed(channels: dict[str, str]) -> dict:
    """This stack's own outputs after its last *successful* up."""
    return {"release_channel": "rapid", "clusters": {n: {"release_channel": c} for n, c in channels.items()}}


def staging(channel: str = "regular", clusters=None) -> dict:
    return minimal_config(**{"gke-mesh:releaseChannel": channel, "gke-mesh:promotion": {"after": DEV},
                             "gke-mesh:clusters": clusters or [{"name": "staging-1", "location": "asia-northeast1"}]})


def up_program(values: dict, stack: str, stack_outputs: dict) -> list[str]:
    """The program as `pulumi up` runs it (stack references answered); the types it registered."""
    monitor = RecordingMonitor(EchoMocks())
    try:
        run_program(stack_config(values), stack, monitor=monitor, stack_outputs=stack_outputs)
    finally:
        registered = [r.type for r in monitor.registrations]
    return registered


def passes(values: dict, stack: str, stack_outputs: dict) -> bool:
    try:
        return "command:local:Command" in up_program(values, stack, stack_outputs)
    except ConfigError as error:
        assert str(error).startswith("gke-mesh:promotion"), error
        return False


def test_resume_after_a_failed_up_once_the_stage_before_moved_on_is_refused_saying_how_to_resume():
    """Was BROKEN as a README claim ("Resume: fix what the message names, then `pulumi up`").
    staging (rapid) moves to regular while dev has verified regular; the up fails after
    staging-1's purge (outputs stay those of the last successful up: rapid); dev moves on to
    stable. The gate cannot see the migration in flight, so the resume is checked again: the
    refusal now says to resume with force and a reason, as README's "Resume" says."""
    this = deployed({"staging-1": "rapid"})
    assert passes(staging("regular"), "staging", {DEV: stage_on("regular"), STAGING: this}), "the change itself was allowed"
    with pytest.raises(ConfigError, match=r"set gke-mesh:promotion.force with a reason \(also to resume a migration already under way"):
        up_program(staging("regular"), "staging", {DEV: stage_on("stable"), STAGING: this})
    assert "resume <run id>" in (ROOT / "README.md").read_text()


def test_reverting_after_a_failed_up_is_never_gated():
    """HELD (regression): the way back (README "Roll back") is not gated even while the stage
    before is elsewhere: the channel the stack last deployed is not a move."""
    this = deployed({"staging-1": "rapid"})
    assert passes(staging("rapid"), "staging", {DEV: stage_on("stable", verified=False), STAGING: this})


@pytest.mark.parametrize("case,clusters,this", [
    ("first deployment", None, {}),
    ("renamed cluster", [{"name": "staging-one", "location": "asia-northeast1"}], deployed({"staging-1": "regular"})),
    ("added cluster", [{"name": "staging-1", "location": "asia-northeast1"}, {"name": "staging-2", "location": "asia-northeast1"}],
     deployed({"staging-1": "regular"})),
    ("per-cluster channel", [{"name": "staging-1", "location": "asia-northeast1", "releaseChannel": "stable"}],
     deployed({"staging-1": "regular"})),
])
def test_a_cluster_new_to_this_stack_or_to_a_channel_is_gated(case, clusters, this):
    """HELD (regression): what the stack's own outputs do not show on the target is gated."""
    assert not passes(staging("regular", clusters), "staging", {DEV: stage_on("rapid"), STAGING: this}), case


def test_removing_a_cluster_is_not_gated():
    """HELD (regression)."""
    this = deployed({"staging-1": "regular", "staging-2": "regular"})
    assert passes(staging("regular"), "staging", {DEV: stage_on("stable"), STAGING: this})


# ---------------------------------------------------------------------------- a targeted up
def verify_stdout_of_a_cluster_on(tmp_path, channel: str) -> str:
    """The verify step's real stdout for a cluster verified on `channel` (a skip: already there)."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    seed_field_report(world, channel=channel, name="staging-1")
    chain = Chain(world, context(cluster="staging-1", channel=channel), Options(stack="staging", backup_uri=BUCKET))
    chain.up()
    return chain.state["verify"].stdout


def outputs_after_a_targeted_up(tmp_path) -> dict:
    """staging's outputs after `pulumi up --target <an API>` with releaseChannel: regular, on a
    stack whose chains last ran on rapid: a targeted up runs the whole program and registers
    the stack outputs; every untargeted Command keeps its old state (verify's stdout from
    rapid) while `release_channel` comes from config (measured on the real engine:
    test_a_targeted_up_exports_the_new_channel_with_the_old_verify)."""
    last_verify = verify_outputs(verify_stdout_of_a_cluster_on(tmp_path, "rapid"), "regular")
    assert last_verify["revision"] == "asm-managed-rapid"
    assert last_verify["verified"] is False, "a verify of rapid exported beside regular is not a verify of regular"
    return {"release_channel": "regular", "clusters": {"staging-1": {
        "project": "my-project-123456", "location": "asia-northeast1", "membership": "staging-1",
        "membership_location": "asia-northeast1", "release_channel": "regular", "last_verify": last_verify}}}


def test_a_stage_that_never_ran_the_chain_on_a_channel_does_not_pass_the_next_gate(tmp_path):
    """BROKEN ("`verified` means verified"; the promotion gate). staging (rapid, verified) sets
    regular while dev has verified it, and an operator runs a targeted up (say, to enable one
    API): no step runs, but staging's outputs now say release_channel regular with the rapid
    verify's `verified: true, ACTIVE`. prod's gate and `meshops promote` read that as staging
    having verified regular."""
    staging_outputs = outputs_after_a_targeted_up(tmp_path)
    prod = minimal_config(**{"gke-mesh:releaseChannel": "regular", "gke-mesh:promotion": {"after": STAGING},
                             "gke-mesh:clusters": [{"name": "prod-1", "location": "asia-northeast1"}]})
    assert not passes(prod, "prod", {STAGING: staging_outputs, PROD: deployed({"prod-1": "rapid"})}), \
        "prod's gate accepted a verify of rapid as staging's verify of regular"


def test_promote_does_not_copy_a_channel_its_source_never_verified(tmp_path):
    """BROKEN (same cause, `meshops promote`)."""
    staging_outputs = outputs_after_a_targeted_up(tmp_path)
    for stack, channel in (("staging", "regular"), ("prod", "rapid")):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(
            f"config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: {channel}\n"
            f"  gke-mesh:clusters: [{{name: {stack}-1, location: asia-northeast1}}]\n")
    try:
        diff = promote("staging", "prod", tmp_path, lambda stack: staging_outputs, dry_run=True)
    except PromoteError as error:
        assert "has not verified regular" in str(error), error
    else:
        pytest.fail(f"promote copied regular into prod from a stage that never verified it:\n{diff}")


def test_a_channel_deployed_by_a_targeted_up_is_still_gated_when_the_chain_runs(tmp_path):
    """BROKEN (the promotion gate). After that targeted up, staging's own outputs say regular:
    the next plain `up` runs the migration to regular ungated, even after dev has left regular
    (or un-verified it)."""
    this = outputs_after_a_targeted_up(tmp_path)
    assert not passes(staging("regular"), "staging", {DEV: stage_on("stable", verified=False), STAGING: this}), \
        "the migration to regular runs with no verified regular anywhere before it"


ENGINE_PROBE = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from testbed import engine_chain
    from pulumi import automation as auto
    import pulumi
    from pulumi_command import local

    scratch = Path({scratch!r})
    home, state, work = scratch / "home", scratch / "state", scratch / "project"
    for folder in (home, state, work):
        folder.mkdir(parents=True, exist_ok=True)
    cli_bin, cmd_bin = engine_chain.pulumi_bin(), engine_chain.provider_bin()
    for var in engine_chain.PROXY_VARS:
        os.environ.pop(var, None)
    env = {{"PATH": f"{{cmd_bin}}:{{cli_bin}}:{{os.environ['PATH']}}", "PULUMI_HOME": str(home),
           "PULUMI_BACKEND_URL": f"file://{{state}}", "PULUMI_CONFIG_PASSPHRASE": "x", "PULUMI_SKIP_UPDATE_CHECK": "true",
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true"}}
    os.environ.update(env)
    subprocess.run([str(cli_bin / "pulumi"), "login", f"file://{{state}}"], check=True, capture_output=True)

    def program(channel):
        def body():
            verify = local.Command("verify", create=f"echo verified-on-{{channel}}", triggers=[channel])
            local.Command("api", create="echo api")
            pulumi.export("release_channel", channel)
            pulumi.export("last_verify", verify.stdout)
        return body

    stack = auto.create_or_select_stack(stack_name="staging", project_name="probe", program=program("rapid"),
        opts=auto.LocalWorkspaceOptions(work_dir=str(work), pulumi_home=str(home), env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(cli_bin.parent), skip_version_check=True),
            project_settings=auto.ProjectSettings(name="probe", runtime="python")))
    stack.up(program=program("rapid"), color="never")
    api = [r["urn"] for r in stack.export_stack().deployment["resources"] if r["urn"].endswith("::api")]
    stack.up(program=program("regular"), target=api, color="never")
    print(json.dumps({{k: v.value for k, v in stack.outputs().items()}}))
""")


@pytest.mark.e2e
def test_a_targeted_up_exports_the_new_channel_with_the_old_verify(tmp_path):
    """The engine fact the three tests above rest on (real Pulumi v3.274.1 and the command
    stand-in of testbed/): `pulumi up --target <other>` registers the stack outputs; an
    untargeted Command keeps its old stdout."""
    from testbed import engine_chain

    if engine_chain.missing_binaries():
        pytest.skip("testbed not built: " + "; ".join(engine_chain.missing_binaries()))
    cut, _ = engine_chain.network_cut_argv()
    script = tmp_path / "probe.py"
    script.write_text(ENGINE_PROBE.format(root=str(ROOT), scratch=str(tmp_path / "bed")))
    done = subprocess.run([*cut, sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert outputs == {"release_channel": "regular", "last_verify": "verified-on-rapid"}


# ============================================================================ gateways and the Feature
def test_a_gateway_keeps_serving_through_uninject_and_is_on_the_new_revision_after(tmp_path):
    """HELD (regression): a gateway (image: auto, gateway template) is not restarted by uninject,
    keeps its proxy until reinject, and verify proves it on the new revision."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    cluster.add_deployment("katayan-gateway", "ingress", replicas=2, gateway=True)
    chain = Chain(world, context(), Options(stack="dev", backup_uri=BUCKET))
    assert attempt(chain, stop_after="purge") == "purge"
    gateways = [p for (r, ns, _), p in cluster.objects.items() if r == "pods" and ns == "katayan-gateway"
                and p["metadata"]["name"].startswith("ingress-")]
    assert gateways and all(c["image"] != "auto" for p in gateways for c in p["spec"]["containers"]), "gateways kept their proxy"
    results = chain.up()
    assert results["verify"]["verified"] is True
    after = [p for (r, ns, _), p in cluster.objects.items() if r == "pods" and ns == "katayan-gateway"
             and p["metadata"]["name"].startswith("ingress-")]
    assert after and all(c["image"].endswith("1.20.8-asm.33") for p in after for c in p["spec"]["containers"])


def test_the_adopted_feature_never_writes_fleet_owned_fields():
    """HELD (regression): the Feature is imported, retained, and ignores labels, spec and
    fleetDefaultMemberConfig, and the program sets none of them."""
    g = Graph(run(minimal_config()))
    (feature,) = g.of_type("gcp:gkehub/feature:Feature")
    assert feature.options["importId"] and feature.options["retainOnDelete"]
    assert set(feature.options["ignoreChanges"]) >= {"labels", "spec", "fleetDefaultMemberConfig"}
    assert not {"labels", "spec", "fleetDefaultMemberConfig"} & set(feature.inputs)
