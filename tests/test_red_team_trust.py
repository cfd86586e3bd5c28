"""Red team against the trust model (README "Security", "When a migration fails";
docs/architecture.md §4-§6). Each test plays one of: a writer of kube-system, a writer of
istio-system/asm-system, a writer of the backup bucket, a careless teammate, or a second
stack, through the program's own resources on the fake cluster (tests/chain_driver.py).

Every test asserts the SAFE outcome: a failing test is a broken claim. Tests of attacks
that held stay as regressions."""

from __future__ import annotations

import copy
import json

import pytest

from meshops.cluster.process import StepFailed
from meshops.cluster.trust import KEY_ENV
from meshops.context import Options
from tests.chain_driver import Chain, context
from tests.fake_world import seed_field_report, FakeWorld
from tests.test_nothing_lost import AP, PA, VS, mesh_view, mutating_calls, record_of
from tests.test_trust import BUCKET, OWNER_KEY, RECORD_KEY, STACK, attempt, fleet, in_tmp, one_line, writes  # noqa: F401

# ---------------------------------------------------------------------------- helpers


def capture_record(cluster) -> dict:
    """What someone who can read kube-system keeps: the record ConfigMap's data."""
    return copy.deepcopy(cluster.objects[RECORD_KEY]["data"])


def put_back_record(cluster, data: dict) -> None:
    """A kube-system writer replaces (or re-creates) the record with a copy kept earlier."""
    cluster.objects.pop(RECORD_KEY, None)
    cluster.put("configmaps", {"metadata": {"name": "gke-mesh-migration", "namespace": "kube-system"}, "data": copy.deepcopy(data)})


def keep_trying(chain: Chain, attempts: int = 5, **kwargs) -> list[str]:
    """`pulumi up` again and again, as an operator following each message would; the outcomes."""
    outcomes = []
    for _ in range(attempts):
        outcomes.append(attempt(chain, **kwargs))
        if outcomes[-1] == "ok":
            break
    return outcomes


def verified(chain: Chain) -> bool:
    return "verify" in chain.state and json.loads(chain.state["verify"].stdout).get("verified") is True


# ============================================================================ kube-system writer: a replayed record of the SAME run
@pytest.mark.parametrize("how", ["rolled-back", "deleted", "unsigned"])
def test_the_guard_never_lets_a_purged_cluster_go_whatever_happened_to_its_record(tmp_path, how):
    """Tried, then removed the cluster from the stack with the run stopped after the purge
    (security relaxed, control plane gone). README "Never abandoned": the guard's delete
    refuses while this stack's migration has changed the cluster and not finished.
    - rolled-back (kube-system writer): the run's own genuine record kept at phase
      `backed-up` (signed by this stack, this run) put back over the `purged` one;
    - deleted (careless teammate): the record deleted;
    - unsigned (kube-system writer): the record's data overwritten with junk."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="backup") == "backup"
    kept = capture_record(cluster)
    assert json.loads(kept["record"])["phase"] == "backed-up"
    assert attempt(chain, stop_after="purge") == "purge"
    assert record_of(cluster)["phase"] == "purged"
    if how == "rolled-back":
        put_back_record(cluster, kept)
    elif how == "deleted":
        del cluster.objects[RECORD_KEY]
    else:
        cluster.objects[RECORD_KEY]["data"] = {"record": "{}", "mac": "0" * 64}
    chain.in_program = False  # the cluster is removed from gke-mesh:clusters
    outcome = attempt(chain)
    assert outcome != "ok", (f"guard released a purged cluster: outcome {outcome!r}, record left "
                             f"{RECORD_KEY in cluster.objects}, claim left {OWNER_KEY in cluster.objects}")


def test_a_planned_record_of_the_same_run_put_back_before_a_revert_never_ends_verified_with_objects_lost(tmp_path):
    """Tried (kube-system writer): keep the run's own record right after preflight (phase
    `planned`, no backup yet), let the run fail at restore (security relaxed, control plane
    purged, nothing restored), put the kept record back, and the operator rolls back the
    documented way (revert releaseChannel). README "Nothing lost": a revert "never [takes] a
    new snapshot of a partly dismantled cluster"."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="preflight") == "preflight"
    kept = capture_record(cluster)
    assert json.loads(kept["record"])["phase"] == "planned"
    world.fail(lambda argv: argv[0] == "kubectl" and "apply" in argv, "restore interrupted")
    assert "restore interrupted" in attempt(chain)
    put_back_record(cluster, kept)
    chain.ctx = context(channel="rapid")  # roll back: revert the channel
    outcomes = keep_trying(chain)
    now = mesh_view(cluster)
    if verified(chain):
        assert now["objects"] == before["objects"] and now["modes"] == before["modes"], (
            f"verified: true with {len(now['objects'])} of {len(before['objects'])} Istio objects and modes "
            f"{now['modes']} (outcomes {outcomes})")


# ============================================================================ the documented roll back of a run that changed nothing
def test_reverting_a_run_that_changed_nothing_drops_it(tmp_path):
    """Tried (operator, no attacker): the run stopped right after its backup (nothing
    changed), then the documented roll back (revert releaseChannel). README "Roll back":
    "when the cluster was not changed yet it just drops the record": `up` succeeds, no
    record stays in flight, the cluster can leave the stack."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="backup") == "backup"
    chain.ctx = context(channel="rapid")
    outcomes = keep_trying(chain, attempts=3)
    assert outcomes[0] == "ok" and record_of(cluster) is None, \
        f"outcomes {[o[:150] for o in outcomes]}; record left: {record_of(cluster) and record_of(cluster)['phase']}"


def test_a_policy_deleted_after_a_dropped_run_is_not_brought_back_by_the_next_change(tmp_path):
    """Tried (operator + teammate): the run stopped after its backup is rolled back (above);
    a teammate then deletes the ALLOW policy katayan/allow-gateway on purpose; the channel
    change is made again weeks later. tests/test_red_team.py keeps such a deletion ("a
    deleted ALLOW policy brought back could widen access"); an old run's backup must not
    bring it back."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="backup") == "backup"
    chain.ctx = context(channel="rapid")
    keep_trying(chain, attempts=3)
    del cluster.objects[(AP, "katayan", "allow-gateway")]
    chain.ctx = context(channel="regular")
    outcomes = keep_trying(chain)
    assert (AP, "katayan", "allow-gateway") not in cluster.objects, \
        f"the deleted ALLOW policy is back (outcomes {[o[:100] for o in outcomes]}, verified {verified(chain)})"


# ============================================================================ istio-system writer / a careless name: restore wedged
def _wedge_outcome(tmp_path, plant) -> tuple:
    from meshops.cluster import breakglass

    world, cluster, chain = fleet(tmp_path)
    plant(cluster)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    outcomes = keep_trying(chain)
    try:
        by_hand = breakglass.restore(breakglass.Target(context(channel="regular"), STACK, BUCKET, chain.key()), world,
                                     None, None, dry_run=False)
    except (StepFailed, breakglass.BreakGlassError) as error:
        by_hand = str(error)
    return world, cluster, chain, before, outcomes, by_hand


def test_a_config_map_named_like_a_mesh_config_in_istio_system_does_not_wedge_restore(tmp_path):
    """Tried (istio-system writer, or a teammate keeping an old copy): a ConfigMap
    `istio-system/istio-asm-managed-rapid-old` before the migration. README "Security":
    every object there other than a workload "is archived in the backup ... and never
    restored automatically"; a migration must end with security back, or stop before any change."""
    def plant(cluster):
        cluster.put("configmaps", {"metadata": {"name": "istio-asm-managed-rapid-old", "namespace": "istio-system"},
                                   "data": {"mesh": "accessLogFile: /dev/null\n"}})
    world, cluster, chain, before, outcomes, by_hand = _wedge_outcome(tmp_path, plant)
    now = mesh_view(cluster)
    untouched = now == before
    finished = verified(chain) and now["objects"] == before["objects"] and now["modes"] == before["modes"]
    assert untouched or finished, (f"wedged: {len(now['objects'])} of {len(before['objects'])} Istio objects, modes "
                                   f"{now['modes']}; every up: {outcomes[-1][:220]!r}; meshops restore: {by_hand[:160]!r}")


def test_an_istio_object_created_with_generate_name_does_not_wedge_restore(tmp_path):
    """Tried (anyone who may create a VirtualService in their namespace): one created with
    `metadata.generateName` (the API server keeps the field). The backup keeps it; restore
    must put every object back (or the migration must stop before any change)."""
    def plant(cluster):
        cluster.put(VS, {"metadata": {"name": "canary-x7k2p", "generateName": "canary-", "namespace": "katayan"},
                         "spec": {"hosts": ["canary"]}})
    world, cluster, chain, before, outcomes, by_hand = _wedge_outcome(tmp_path, plant)
    now = mesh_view(cluster)
    untouched = now == before
    finished = verified(chain) and now["objects"] == before["objects"] and now["modes"] == before["modes"]
    assert untouched or finished, (f"wedged: {len(now['objects'])} of {len(before['objects'])} Istio objects, modes "
                                   f"{now['modes']}; every up: {outcomes[-1][:220]!r}; meshops restore: {by_hand[:160]!r}")


def test_an_owned_deployment_in_istio_system_is_refused_or_kept(tmp_path):
    """Tried (istio-system writer): a Deployment in istio-system carrying an ownerReference
    (to a ConfigMap there, so the garbage collector keeps it). README "Security": workloads
    there "are refused before anything changes; every other object is archived"."""
    world, cluster, chain = fleet(tmp_path)
    cluster.put("configmaps", {"metadata": {"name": "egress-config", "namespace": "istio-system"}, "data": {"a": "b"}})
    cluster.put("deployments", {"metadata": {"name": "egress-proxy", "namespace": "istio-system",
                                             "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                                  "name": "egress-config", "uid": "uid-cm"}]},
                                "spec": {"replicas": 1}})
    chain.ctx = context(channel="regular")
    outcome = attempt(chain)
    refused = "istio-system/deployment/egress-proxy" in outcome and writes(world) == [] or \
        ("istio-system/deployment/egress-proxy" in outcome and not mutating_calls(world))
    archived = any(o.get("kind") == "Deployment" and o["metadata"]["name"] == "egress-proxy"
                   for path in (tmp_path / "gcs").rglob("backup.json") for o in json.loads(path.read_text())["archive"])
    present = ("deployments", "istio-system", "egress-proxy") in cluster.objects
    assert refused or archived or present, f"outcome {outcome!r}: the Deployment is gone and in no backup"


# ============================================================================ relaxed further mid-migration
@pytest.mark.parametrize("weaker", ["DISABLE", "unset"])
def test_a_relaxed_peer_authentication_weakened_further_mid_migration_does_not_end_verified_weaker(tmp_path, weaker):
    """Tried (a writer of PeerAuthentications, mid-migration): after relax-security made
    katayan/web PERMISSIVE, set it to DISABLE (or drop its mode). drift.unrelaxed takes a
    PERMISSIVE set mid-migration back to STRICT ("the safer reading"); a mode weaker still
    must not be what restore puts back and verify calls verified."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    spec = cluster.objects[(PA, "katayan", "web")]["spec"]
    assert spec["mtls"]["mode"] == "PERMISSIVE"
    if weaker == "DISABLE":
        spec["mtls"]["mode"] = "DISABLE"
    else:
        del spec["mtls"]
    outcome = attempt(chain)
    mode = (cluster.objects.get((PA, "katayan", "web"), {}).get("spec", {}).get("mtls") or {}).get("mode", "UNSET")
    assert not (outcome == "ok" and verified(chain)) or mode == "STRICT", \
        f"verified: true with katayan/web mode {mode} (backed up STRICT)"


# ============================================================================ a second stack
def test_a_pre_signing_claim_of_another_projects_prod_is_not_taken_by_this_projects_prod(tmp_path):
    """Tried (second stack): the cluster is held by acme/payments/prod through a claim an
    earlier gke-mesh wrote (unsigned, `stack: prod`); acme/checkout/prod is pointed at it.
    README "Identity is <org>/<project>/<stack>: a second project's prod on a shared cluster
    is another stack"."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world, channel="rapid")
    cluster.put("configmaps", {"metadata": {"name": "gke-mesh-owner", "namespace": "kube-system"}, "data": {"stack": "prod"}})
    second = Chain(world, context(channel="regular"), Options(stack="acme/checkout/prod", backup_uri=BUCKET))
    outcome = attempt(second)
    assert "claimed by" in outcome and mutating_calls(world) == [], \
        f"acme/checkout/prod took a cluster claimed by `prod`: outcome {outcome!r}, claim now {cluster.objects[OWNER_KEY]['data'].get('stack')}"


def test_a_stack_with_the_same_name_and_a_new_key_is_refused_by_the_claim(tmp_path):
    """Tried (second stack): the same <org>/<project>/<stack> re-created with fresh state
    (a new key) on a claimed cluster. Held: refused in one line, nothing written."""
    world, cluster, chain = fleet(tmp_path)
    chain.up()
    twin = Chain(world, context(channel="regular"), Options(stack=STACK, backup_uri=BUCKET))
    since = len(world.calls)
    outcome = attempt(twin)
    assert "not signed with its key" in outcome and one_line(outcome) and writes(world, since) == []


def test_a_claim_deleted_mid_migration_does_not_let_a_second_stack_in(tmp_path):
    """Tried (careless teammate + second stack): delete the owner claim while the run is
    relaxed; another stack is pointed at the cluster. Held: its preflight refuses on the
    record; this stack finishes with nothing lost."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    del cluster.objects[OWNER_KEY]
    other = Chain(world, context(channel="stable"), Options(stack="organization/other/dev", backup_uri=BUCKET))
    since = len(world.calls)
    outcome = attempt(other)
    assert "not signed by this stack" in outcome and writes(world, since) == []
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True and mesh_view(cluster)["objects"] == before["objects"]


# ============================================================================ bucket writer
def test_a_forged_record_copy_in_a_newer_run_folder_stops_the_backup_and_deleting_it_recovers(tmp_path):
    """Tried (bucket writer): an unsigned record.json in a run folder that sorts after every
    real run. Held: the backup step refuses in one line before any change to the mesh; once
    the object is deleted the same run goes on and finishes."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    forged = tmp_path / "gcs" / BUCKET.removeprefix("gs://") / STACK / "dev-cluster-1" / "rapid-to-regular" / "99991231T000000Z-ffffffff"
    forged.mkdir(parents=True)
    (forged / "record.json").write_text(json.dumps({"record": {"stack": STACK, "run_id": "99991231T000000Z-ffffffff",
                                                               "phase": "purged"}, "mac": "0" * 64}))
    chain.ctx = context(channel="regular")
    outcome = attempt(chain)
    assert "is not signed by this stack" in outcome and one_line(outcome) and mutating_calls(world) == []
    (forged / "record.json").unlink()
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True and mesh_view(cluster)["objects"] == before["objects"]


# ============================================================================ the key
def test_the_stack_key_never_reaches_an_argv_stdin_or_log_line(tmp_path):
    """Tried: look for the stack's key (its hex) in every CLI call, every stdin and every
    log line of a whole migration with a failure and a resume. Held."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    stdins = []
    original = world.__class__.__call__

    def spy(self, argv, input=None):
        stdins.append(input or "")
        return original(self, argv, input=input)

    world.__class__.__call__ = spy
    try:
        world.fail(lambda argv: argv[0] == "kubectl" and "apply" in argv, "restore interrupted")
        keep_trying(chain)
    finally:
        world.__class__.__call__ = original
    secret = json.loads(chain.state["stack-key"].stdout)["key"]
    assert verified(chain)
    assert not [c for c in world.calls if any(secret in a for a in c)]
    assert not [s for s in stdins if secret in s] and not [line for line in world.log if secret in line]
    assert all(secret not in stored.stdout for name, stored in chain.state.items() if name != "stack-key")
    assert KEY_ENV in chain.state["verify"].environment  # it travels only in the environment


def test_a_finished_runs_record_copy_put_back_at_an_older_version_does_not_resurrect_the_run(tmp_path):
    """Tried (bucket writer only; the bucket is versioned, so its noncurrent versions are
    readable): after a verified migration, put back the run's own earlier record.json (the
    genuine signed copy the backup step wrote, phase `backed-up`) as the live version. A
    teammate deletes the ALLOW policy katayan/allow-gateway on purpose; later the channel
    moves on and the operator follows every message. README "Write access to the bucket ...
    an overwrite changes nothing"; the finished run's old backup must not be applied again."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    assert chain.up()["verify"]["verified"] is True
    copies = [url for url in world.gcs_generations if url.endswith("/record.json")]
    assert len(copies) == 1
    versions = world.gcs_generations[copies[0]]
    older = versions[min(versions)]
    assert json.loads(older)["record"]["phase"] == "backed-up" and json.loads(versions[max(versions)])["record"]["phase"] == "verified"
    world.stdin = older
    world._storage_write(copies[0])  # the attacker's write: the old genuine version is live again
    del cluster.objects[(AP, "katayan", "allow-gateway")]
    chain.ctx = context(channel="stable")
    outcomes = []
    for index in range(5):
        outcomes.append(attempt(chain))
        if outcomes[-1] == "ok":
            break
        chain.rerun = f"follow-the-message-{index}"
    assert (AP, "katayan", "allow-gateway") not in cluster.objects, \
        f"the finished run's backup was applied again: the deleted ALLOW policy is back (outcomes {[o[:140] for o in outcomes]})"
