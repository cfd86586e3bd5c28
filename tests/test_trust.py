"""Trust nothing the stack did not write (issue "Trust nothing you did not write"): the
record, the backup, the stack's identity and what a step is handed. Each test plays someone
with write access to kube-system, istio-system or the bucket, or a teammate who deletes
what they do not understand, on the fake cluster through the program's own resources.

"Before anything changes" means: no call that writes to the cluster, the fleet or the
bucket (`writes`), the stack's own signed bookkeeping included unless a test says so."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from meshops.cluster.backup_store import Backup, Owner
from meshops.cluster.kube import ARGV_BUDGET, Kube
from meshops.cluster.process import StepFailed
from meshops.cluster.trust import StackKey
from meshops.context import Options
from meshops.steps.restore import apply_backup
from tests.chain_driver import Cancelled, Chain, context
from tests.fake_world import FakeWorld, crd_object, seed_field_report
from tests.test_nothing_lost import AP, PA, mesh_view, record_of
from tests.test_red_team import attempt

STACK = "organization/gke-mesh/dev"
BUCKET = "gs://mesh-backups/moves"
RECORD_KEY = ("configmaps", "kube-system", "gke-mesh-migration")
OWNER_KEY = ("configmaps", "kube-system", "gke-mesh-owner")
WRITES = {"kubectl": ("create", "replace", "apply", "delete", "patch", "label", "rollout"),
          "gcloud": ("update", "delete", "register", "cp")}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def fleet(tmp_path: Path, channel: str = "rapid", stack: str = STACK, **options):
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world, channel=channel)
    return world, cluster, Chain(world, context(channel=channel), Options(stack=stack, backup_uri=BUCKET, **options))


def writes(world: FakeWorld, since: int = 0) -> list[list[str]]:
    """Calls after `since` that change something (a `rollout status` only reads)."""
    found = []
    for argv in world.calls[since:]:
        words = [a for a in argv if not a.startswith("-")]
        if argv[0] == "kubectl" and words[1] in WRITES["kubectl"] and words[1:3] != ["rollout", "status"]:
            found.append(argv)
        elif argv[0] == "gcloud" and any(w in WRITES["gcloud"] for w in words[1:5]):
            found.append(argv)
    return found


def one_line(message: str) -> bool:
    return "\n" not in message and "Traceback" not in message


def forge_record(cluster, content: dict, mac: str | None = None) -> None:
    data = {"record": json.dumps(content)}
    if mac is not None:
        data["mac"] = mac
    cluster.put("configmaps", {"metadata": {"name": "gke-mesh-migration", "namespace": "kube-system"}, "data": data})


def attackers_backup(cluster_name: str = "dev-cluster-1", **objects) -> tuple[bytes, bytes]:
    """backup.json and manifest.json as an attacker with bucket access can write them: valid
    format and digests, any content."""
    backup = Backup(cluster_name, "rapid", "regular", "run-x", objects=objects, stack=STACK,
                    project="my-project-123456", location="asia-northeast1")
    content = backup.content()
    return content, backup.manifest(content)


BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "attacker-admin"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                             "kind": "ClusterRole", "name": "cluster-admin"},
           "subjects": [{"kind": "User", "name": "attacker@example.com"}]}


# ============================================================================ 1. the record
def test_a_forged_unsigned_record_stops_the_next_channel_change_before_anything_changes(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.up()  # rapid, aligned: the stack holds the cluster and has its key
    forge_record(cluster, {"stack": STACK, "run_id": "20260101T000000Z-attacker", "cluster": "dev-cluster-1",
                           "project": "my-project-123456", "location": "asia-northeast1", "from_channel": "rapid",
                           "to_channel": "regular", "from_revision": "asm-managed-rapid", "membership": "dev-cluster-1",
                           "phase": "purging", "backup": {"location": "gs://attacker/bucket", "manifest_sha256": "0" * 64}})
    before, since = mesh_view(cluster), len(world.calls)
    chain.ctx = context(channel="regular")
    error = attempt(chain)
    assert "is not signed by this stack" in error and "names stack organization/gke-mesh/dev" in error and one_line(error)
    assert writes(world, since) == [] and mesh_view(cluster) == before
    assert not [c for c in world.calls[since:] if any("attacker" in a for a in c)], "the forged backup is never read"


def test_a_record_signed_with_another_stacks_key_is_not_this_stacks(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.up()
    other = StackKey(bytes(range(32)), STACK)  # same stack name, another state (another key)
    content = {"stack": STACK, "run_id": "r", "cluster": "dev-cluster-1", "project": "my-project-123456",
               "location": "asia-northeast1", "from_channel": "rapid", "to_channel": "regular",
               "from_revision": "asm-managed-rapid", "membership": "dev-cluster-1", "phase": "purging"}
    from meshops.cluster.record import MigrationRecord, signed_document

    signed = signed_document(other, context(), MigrationRecord.from_content(content))
    forge_record(cluster, signed["record"], signed["mac"])
    since = len(world.calls)
    chain.ctx = context(channel="regular")
    assert "is not signed by this stack" in attempt(chain)
    assert writes(world, since) == []


def test_an_old_genuine_record_put_back_is_refused_not_resumed(tmp_path):
    """The issue's rollback: the record pointed at the cluster's own older backup restored an
    older (weaker) policy and ended verified. A signed record cannot be re-pointed; an old one
    replayed whole is caught by its run's signed copy, which says the run finished."""
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="purge")
    captured = json.loads(json.dumps(cluster.objects[RECORD_KEY]))  # someone with read access keeps a copy
    chain.up()
    assert record_of(cluster) is None
    cluster.put("configmaps", {"metadata": {"name": "gke-mesh-migration", "namespace": "kube-system"}, "data": captured["data"]})
    since = len(world.calls)
    chain.ctx = context(channel="stable")
    error = attempt(chain)
    assert "is an older version put back in kube-system" in error and one_line(error)
    assert writes(world, since) == []


def test_a_backup_of_another_cluster_stack_or_run_is_refused_by_its_owner():
    owner = Owner(STACK, "my-project-123456", "asia-northeast1", "dev-cluster-1")
    mine = Backup("dev-cluster-1", "rapid", "regular", "run-1", stack=STACK, project="my-project-123456", location="asia-northeast1")
    folder = f"{BUCKET}/{STACK}/dev-cluster-1/rapid-to-regular"
    assert owner.problem(mine, f"{folder}/run-1", "run-1") is None
    assert owner.problem(mine, f"{folder}/run-1/supplement-2", "run-1") is None
    assert "not under this stack's folder" in owner.problem(mine, "gs://attacker/run-1", "run-1")
    assert "not run run-2's folder" in owner.problem(mine, f"{folder}/run-1", "run-2")
    other = Backup("dev-cluster-1", "rapid", "regular", "run-1", stack="organization/other/dev", project="my-project-123456",
                   location="asia-northeast1")
    assert "stack 'organization/other/dev'" in owner.problem(other, f"{folder}/run-1", "run-1")
    moved = Backup("dev-cluster-1", "rapid", "regular", "run-1", stack=STACK, project="another-project", location="asia-northeast1")
    assert "project 'another-project'" in owner.problem(moved, f"{folder}/run-1", "run-1")


# ============================================================================ 2. what restore applies
def restore_into(cluster_world: FakeWorld, backup: Backup) -> dict:
    kube = Kube(_kubeconfig(cluster_world))
    return apply_backup(cluster_world, kube, backup, "gs://somewhere", "dev-cluster-1", "asm-managed-rapid", "asm-managed")


def _kubeconfig(world: FakeWorld) -> str:
    path = Path("kubeconfig")
    path.write_text(json.dumps({"current-context": "gke-mesh_my-project-123456_asia-northeast1_dev-cluster-1",
                                "users": [{"user": {"exec": {"command": "gke-gcloud-auth-plugin"}}}]}))
    return str(path)


@pytest.mark.parametrize("case", ["non-istio-kind", "kind-under-an-istio-key", "configmap-elsewhere", "owner-reference",
                                  "flag-like-name", "flag-like-label"])
def test_restore_applies_only_what_a_mesh_backup_may_hold(tmp_path, case):
    world = FakeWorld()
    seed_field_report(world)
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "ok", "namespace": "katayan"}, "spec": {"hosts": ["*"]}}
    objects = {"virtualservices.networking.istio.io": [vs]}
    configmaps: list[dict] = []
    if case == "non-istio-kind":
        objects["clusterrolebindings.rbac.authorization.k8s.io"] = [BINDING]
    elif case == "kind-under-an-istio-key":
        objects["virtualservices.networking.istio.io"].append({**BINDING, "metadata": {"name": "x", "namespace": "katayan"}})
    elif case == "configmap-elsewhere":
        configmaps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
                           "data": {"Corefile": "attacker"}})
    elif case == "owner-reference":
        objects["virtualservices.networking.istio.io"][0]["metadata"]["ownerReferences"] = [{"kind": "Namespace", "name": "x"}]
    elif case == "flag-like-name":
        objects["virtualservices.networking.istio.io"][0]["metadata"]["name"] = "--server=https://127.0.0.1:9"
    else:
        objects["virtualservices.networking.istio.io"][0]["metadata"]["labels"] = {"--server=https://127.0.0.1:9": "x"}
    backup = Backup("dev-cluster-1", "rapid", "regular", "run-1", objects=objects, configmaps=configmaps)
    since = len(world.calls)
    with pytest.raises(StepFailed) as refused:
        restore_into(world, backup)
    assert "which a mesh backup never holds; refusing to apply any of it" in str(refused.value) and one_line(str(refused.value))
    assert writes(world, since) == [], "nothing applied, not even the valid VirtualService"


def test_break_glass_restore_of_a_crafted_backup_is_refused(tmp_path, monkeypatch, capsys):
    """Someone who can write the bucket writes a valid-looking backup holding a binding to
    cluster-admin and hands its sha256 to an operator: restore by hand refuses it."""
    import meshops.__main__ as cli
    from meshops.cluster import breakglass

    world, cluster, chain = fleet(tmp_path)
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  gcp:project: my-project-123456\n  gke-mesh:releaseChannel: regular\n"
                                              f"  gke-mesh:clusters:\n    - name: dev-cluster-1\n      location: asia-northeast1\n"
                                              f"  gke-mesh:migration:\n    backupUri: {BUCKET}\n")
    monkeypatch.setattr(cli, "run", world)
    monkeypatch.setattr(breakglass, "key_from_state", lambda identity, directory: (None, "no state"))
    content, manifest = attackers_backup(**{"clusterrolebindings.rbac.authorization.k8s.io": [BINDING]})
    location = f"{BUCKET}/{STACK}/dev-cluster-1/rapid-to-regular/run-x"
    for name, data in (("backup.json", content), ("manifest.json", manifest)):
        world.stdin = data.decode()
        world._storage_write(f"{location}/{name}")
    since = len(world.calls)
    code = cli.main(["restore", "--config", "Pulumi.dev.yaml", "--cluster", "dev-cluster-1", "--backup", location,
                     "--sha256", hashlib.sha256(manifest).hexdigest()])
    err = capsys.readouterr().err
    assert code == 1 and "which a mesh backup never holds" in err.splitlines()[-1]
    assert writes(world, since) == [] and ("clusterrolebindings", "", "attacker-admin") not in cluster.objects


# ============================================================================ 3. no value becomes a flag
FLAG = "--server=https://127.0.0.1:9"


def plant(cluster, where: str) -> None:
    """A flag-like value where a step reads cluster content into an argv (the fake world,
    unlike an API server, stores any name, as a forged backup or a hostile API could hand one)."""
    if where == "namespace-label-key":
        cluster.objects[("namespaces", "", "katayan")]["metadata"]["labels"][FLAG] = "enabled"
    elif where == "namespace-label-value":
        cluster.objects[("namespaces", "", "katayan")]["metadata"]["labels"]["istio.io/rev"] = FLAG
    elif where == "authorization-policy-name":
        cluster.put(AP, {"metadata": {"name": FLAG, "namespace": "katayan"}, "spec": {}})
    elif where == "workload-name":
        cluster.add_deployment("katayan", FLAG)
    elif where == "webhook-name":
        cluster.put("mutatingwebhookconfigurations", {"metadata": {"name": FLAG, "labels": {"istio.io/rev": "asm-managed-rapid"}}})
    elif where == "namespace-name":
        cluster.put("namespaces", {"metadata": {"name": FLAG, "labels": {"istio-injection": "enabled"}}})


PLACES = ["namespace-label-key", "namespace-label-value", "authorization-policy-name", "workload-name", "webhook-name",
          "namespace-name"]


@pytest.mark.parametrize("where", PLACES)
def test_a_flag_like_value_read_from_the_cluster_never_becomes_a_kubectl_flag(tmp_path, where):
    world, cluster, chain = fleet(tmp_path, remove_authorization_policies=True)
    plant(cluster, where)
    for _ in range(6):
        outcome = attempt(chain)
        if outcome == "ok" or "refusing to use" in outcome:
            break
    assert not [argv for argv in world.calls if FLAG in argv or any(a.startswith(FLAG) for a in argv)], \
        f"{FLAG} reached an argv as an element"
    if outcome != "ok":
        assert one_line(outcome) and "it is not" in outcome, outcome


def test_kubectl_builders_refuse_flag_like_values_everywhere():
    kube = Kube("/tmp/kubeconfig")
    for build in (lambda: kube.get(FLAG), lambda: kube.get("pods", namespace=FLAG), lambda: kube.delete("pods", [FLAG], "ns"),
                  lambda: kube.label_namespace("ns", {FLAG: "x"}, []), lambda: kube.label_namespace("ns", {}, [FLAG]),
                  lambda: kube.label_namespace("ns", {"a": FLAG}, []), lambda: kube.restart("ns", [f"deployment/{FLAG}"]),
                  lambda: kube.merge_patch("pods", FLAG, "ns", {}), lambda: kube.get_one("configmap", FLAG, "ns"),
                  lambda: kube.rollout_status("ns", FLAG, 5), lambda: kube.delete_all(FLAG)):
        with pytest.raises(StepFailed, match="refusing to use"):
            build()


def test_flag_like_membership_names_never_reach_gcloud():
    from meshops.cluster import gcloud

    for build in (gcloud.unregister_membership, gcloud.register_membership, gcloud.list_membership_bindings):
        with pytest.raises(StepFailed, match="refusing to use membership"):
            build(context(), "--project=attacker")
    with pytest.raises(StepFailed, match="refusing to use membership"):
        gcloud.set_mesh_management(context(), "--impersonate-service-account=x", "manual")


# ============================================================================ 4. identity
def test_a_second_projects_prod_on_a_shared_cluster_is_another_stack(tmp_path):
    world, cluster, first = fleet(tmp_path, stack="acme/payments/prod")
    first.up()
    second = Chain(world, context(channel="stable"), Options(stack="acme/checkout/prod", backup_uri=BUCKET))
    since = len(world.calls)
    error = attempt(second)
    assert "claimed by stack acme/payments/prod" in error and one_line(error)
    assert writes(world, since) == []


# ============================================================================ 5. the record deleted by hand
@pytest.mark.parametrize("then", ["rerun", "revert"])
def test_a_record_deleted_mid_migration_never_ends_verified_with_objects_gone(tmp_path, then):
    """Used to: the record deleted between provisioning and restore, then a rerun or a
    revert: verified: true with 0 of 8 Istio objects; status said healthy."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    world.fail(lambda argv: "apply" in argv, "restore interrupted")
    chain.ctx = context(channel="regular")
    assert "restore interrupted" in attempt(chain)
    del cluster.objects[RECORD_KEY]  # a teammate follows an old README's abort advice
    if then == "rerun":
        chain.rerun = "after-the-record-was-deleted"
    else:
        chain.ctx = context(channel="rapid")
    error = attempt(chain)
    assert "never finished and its migration record was deleted; it was re-created from its signed copy" in error
    assert record_of(cluster)["recovered"] is True
    assert "verify" not in chain.state or json.loads(chain.state["verify"].stdout).get("compared_with_backup") is not None
    chain.rerun = "finish-it"
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True and results["verify"]["compared_with_backup"] is True
    assert mesh_view(cluster)["objects"] == before["objects"] and mesh_view(cluster)["modes"] == before["modes"]


def test_a_record_deleted_mid_run_is_recreated_from_its_copy_by_a_step_that_knows_the_backup(tmp_path):
    """purge has the backup's reference from state: it finds the run's signed copy beside it."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    del cluster.objects[RECORD_KEY]
    results = chain.up()
    assert results["verify"]["verified"] is True
    assert mesh_view(cluster)["objects"] == before["objects"] and mesh_view(cluster)["modes"] == before["modes"]


def test_a_record_deleted_before_a_step_without_the_backup_says_how_to_resume(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="relax-security")
    del cluster.objects[RECORD_KEY]
    since = len(world.calls)
    error = attempt(chain)
    assert "is gone (deleted by hand?)" in error and "set gke-mesh:migration.rerun" in error and one_line(error)
    assert writes(world, since) == []
    chain.rerun = "resume"
    assert "re-created from its signed copy" in attempt(chain)
    chain.rerun = "resume-again"
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True
    assert mesh_view(cluster)["objects"] == before["objects"] and mesh_view(cluster)["modes"] == before["modes"]


def test_status_finds_an_unfinished_run_whose_record_was_deleted(tmp_path):
    from meshops.cluster import breakglass

    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    del cluster.objects[RECORD_KEY]
    target = breakglass.Target(context(channel="regular"), STACK, BUCKET, chain.key())
    status = breakglass.cluster_status(target, world)
    assert status["verdict"] == "in flight" and "the in-cluster record is gone" in status["record_found_at"]
    assert status["security_differs_from_backup"], "relaxed: PERMISSIVE since relax-security"
    assert breakglass.exit_code([status]) == breakglass.IN_FLIGHT


# ============================================================================ 6. namespaces onboarded mid-migration
def test_a_namespace_labelled_between_a_failed_run_and_its_retry_keeps_its_label_and_sidecars(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    world.fail(lambda argv: argv[:3] == ["kubectl", argv[1], "rollout"] and "restart" in argv, "restart refused")
    assert "restart refused" in attempt(chain)
    cluster.put("namespaces", {"metadata": {"name": "onboarded", "labels": {"istio-injection": "enabled"}}})
    cluster.add_deployment("onboarded", "api")
    assert len([p for p in cluster.injected_pods() if p["metadata"]["namespace"] == "onboarded"]) == 2
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True
    assert cluster.objects[("namespaces", "", "onboarded")]["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert len([p for p in cluster.injected_pods("asm-managed") if p["metadata"]["namespace"] == "onboarded"]) == 2


def test_verify_counts_a_namespace_onboarded_after_the_backup():
    from meshops.cluster.record import MigrationRecord
    from meshops.steps.verify import differences, expected_injected

    backup = Backup("dev-cluster-1", "rapid", "regular", "r", namespaces={"katayan": {"istio-injection": "enabled"}},
                    injected={"katayan": 2})
    record = MigrationRecord(stack=STACK, run_id="r", cluster="dev-cluster-1", from_channel="rapid", to_channel="regular",
                             from_revision="asm-managed-rapid", membership="dev-cluster-1",
                             uninjected={"onboarded": {"istio-injection": "enabled"}, "opted-out": {"istio-injection": "disabled"}})
    expected = expected_injected(backup, record, "asm-managed-rapid")
    assert expected == {"katayan", "onboarded"}
    injected = [{"metadata": {"namespace": "katayan", "annotations": {"sidecar.istio.io/status": '{"revision": "asm-managed"}'}}}]
    problems = differences(backup, {}, injected, "asm-managed", {}, {"katayan", "onboarded", "opted-out"}, expected)
    assert problems == ["1 namespaces that ran injected pods before have none on asm-managed"]


# ============================================================================ 7. a leftover pre-1.6 Istio CRD
def test_a_leftover_legacy_istio_kind_is_archived_and_does_not_block_restore(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    cluster.put("customresourcedefinitions", crd_object("authentication.istio.io", "policies", "Policy"))
    cluster.put("policies.authentication.istio.io", {"metadata": {"name": "default", "namespace": "katayan"}, "spec": {"peers": []}})
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    results, _ = chain.up_until_done(attempts=2)
    assert results["verify"]["verified"] is True
    assert any("policies.authentication.istio.io" in line and "archive only" in line for line in world.log)
    kept = {k: v for k, v in before["objects"].items() if not k[0].endswith("authentication.istio.io")}
    assert {k: v for k, v in mesh_view(cluster)["objects"].items()} == kept


# ============================================================================ 8. a bucket writer after relax-security
def test_backups_overwritten_after_relax_security_are_read_at_their_pinned_generation(tmp_path):
    """Used to: purge and break-glass restore both refused the swapped object and the
    cluster stayed PERMISSIVE with no tool path back."""
    world, cluster, chain = fleet(tmp_path)
    before = mesh_view(cluster)
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="relax-security")
    content, manifest = attackers_backup(**{"clusterrolebindings.rbac.authorization.k8s.io": [BINDING]})
    for path in (tmp_path / "gcs").rglob("backup.json"):
        path.write_bytes(content)
    for path in (tmp_path / "gcs").rglob("manifest.json"):
        path.write_bytes(manifest)
    results, _ = chain.up_until_done(attempts=2)
    assert results["verify"]["verified"] is True
    assert mesh_view(cluster)["objects"] == before["objects"] and mesh_view(cluster)["modes"] == before["modes"]
    assert ("clusterrolebindings", "", "attacker-admin") not in cluster.objects


# ============================================================================ 9. what else lives in istio-system
def test_a_cronjob_or_bare_pod_in_istio_system_is_refused_before_anything_changes(tmp_path):
    for kind, obj in (("cronjobs", {"metadata": {"name": "nightly", "namespace": "istio-system"}, "spec": {}}),
                      ("pods", {"metadata": {"name": "debug", "namespace": "istio-system", "annotations": {}},
                                "spec": {"containers": []}})):
        world, cluster, chain = fleet(tmp_path / kind)
        cluster.put(kind, obj)
        chain.ctx = context(channel="regular")
        error = attempt(chain)
        assert f"istio-system/{kind[:-1]}/{obj['metadata']['name']}" in error and one_line(error)
        assert writes(world) == [], kind


def test_other_objects_in_istio_system_are_archived_even_when_added_after_the_backup(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    cluster.put("networkpolicies", {"metadata": {"name": "deny-egress", "namespace": "istio-system"}, "spec": {"podSelector": {}}})
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    cluster.put("services", {"metadata": {"name": "late", "namespace": "asm-system"}, "spec": {"ports": [{"port": 80}]}})
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True
    archived = {(o["kind"], o["metadata"]["name"]) for path in (tmp_path / "gcs").rglob("backup.json")
                for o in json.loads(path.read_text())["archive"]}
    assert {("NetworkPolicy", "deny-egress"), ("Service", "late")} <= archived


# ============================================================================ 10. break-glass across clusters
def test_break_glass_restore_refuses_another_clusters_backup(tmp_path):
    from meshops.cluster import breakglass

    world, cluster, chain = fleet(tmp_path)
    seed_field_report(world, name="dev-cluster-2", location="asia-northeast2")
    chain.ctx = context(channel="regular")
    with pytest.raises(Cancelled):
        chain.up(stop_after="backup")
    ref = json.loads(chain.state["backup"].stdout)["backup"]
    other = breakglass.Target(context(cluster="dev-cluster-2", location="asia-northeast2", channel="regular"), STACK, BUCKET)
    since = len(world.calls)
    with pytest.raises(breakglass.BreakGlassError) as refused:
        breakglass.restore(other, world, ref["location"], ref["manifest_sha256"], dry_run=False)
    assert "is not a backup of cluster dev-cluster-2" in str(refused.value) and "not under this stack's folder" in str(refused.value)
    copied = ref["location"].replace("/dev-cluster-1/", "/dev-cluster-2/")  # copied where cluster 2's would be
    for name in ("backup.json", "manifest.json"):
        world.stdin = world._storage_read(f"{ref['location']}/{name}")
        world._storage_write(f"{copied}/{name}")
    with pytest.raises(breakglass.BreakGlassError) as refused:
        breakglass.restore(other, world, copied, ref["manifest_sha256"], dry_run=False)
    assert "it is a backup of cluster 'dev-cluster-1', location 'asia-northeast1' (this is cluster 'dev-cluster-2'" in str(refused.value)
    assert writes(world, since) == [] and len(cluster.objects) > 0


# ============================================================================ 11. defined outcomes
def test_a_deleted_owner_claim_then_another_stack_says_what_happened(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.up()
    del cluster.objects[OWNER_KEY]
    Chain(world, context(channel="rapid"), Options(stack="organization/gke-mesh/other", backup_uri=BUCKET)).up()
    chain.ctx = context(channel="regular")
    since = len(world.calls)
    error = attempt(chain)
    assert "claimed by stack organization/gke-mesh/other" in error
    assert "someone deleted its claim and another stack took the cluster" in error and writes(world, since) == []


def test_a_record_deleted_by_verify_whose_answer_was_lost_does_not_wedge_the_retry(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    world.fail(lambda argv: "delete" in argv and "gke-mesh-migration" in argv, "connection reset", after=True)
    assert "connection reset" in attempt(chain)
    assert record_of(cluster) is None, "the delete took effect"
    results = chain.up()
    assert results["verify"]["verified"] is True and results["verify"]["compared_with_backup"] is True


def test_a_verified_record_left_behind_is_finished_not_resumed(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(channel="regular")
    world.fail(lambda argv: "delete" in argv and "gke-mesh-migration" in argv, "refused")
    assert "refused" in attempt(chain)
    assert record_of(cluster)["phase"] == "verified"
    chain.rerun = "again"
    results = chain.up()
    assert results["preflight"]["action"] == "skip" and record_of(cluster) is None


def test_a_channel_changed_by_hand_after_success_is_not_exported_as_verified(run_stack):
    from tests.conftest import minimal_config

    def outputs(args):
        if args.name.endswith("-verify"):
            return {"stdout": json.dumps({"verified": True, "revision": "asm-managed", "control_plane_state": "ACTIVE",
                                          "run_id": "r"})}
        return {}

    def live_cluster(channel):
        return {"gcp:container/getCluster:getCluster": lambda args: {"releaseChannels": [{"channel": channel}]}}

    values = minimal_config()
    same = run_stack(values, invokes=live_cluster("REGULAR"), preview=False, extra_outputs=outputs).outputs
    moved = run_stack(values, invokes=live_cluster("RAPID"), preview=False, extra_outputs=outputs).outputs
    assert same["clusters"]["dev-cluster-1"]["last_verify"]["verified"] is True
    assert moved["clusters"]["dev-cluster-1"]["last_verify"]["verified"] is False


# ============================================================================ 12. very large clusters
def test_thousands_of_objects_fit_argv_and_environment(tmp_path):
    world, cluster, chain = fleet(tmp_path, remove_authorization_policies=True)
    for index in range(3000):
        cluster.put(AP, {"metadata": {"name": f"policy-{index:05d}-" + "x" * 50, "namespace": "katayan"}, "spec": {}})
    for index in range(300):
        cluster.put("namespaces", {"metadata": {"name": f"team-{index:04d}", "labels": {"istio-injection": "enabled"}}})
    chain.ctx = context(channel="regular")
    results, _ = chain.up_until_done()
    assert results["verify"]["verified"] is True
    deletes = [c for c in world.calls if c[0] == "kubectl" and "delete" in c and AP in c]
    assert len(deletes) > 1 and all(sum(len(a) + 1 for a in c) < ARGV_BUDGET + 1024 for c in deletes)
    for step in ("relax-security", "uninject", "reinject", "backup"):
        assert len(chain.state[step].stdout) < 1024, f"{step}'s stdout reaches later updates' environment"


# ============================================================================ 13. a renamed guard
def test_a_renamed_guards_old_delete_leaves_the_new_guards_claim(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.up()
    old_guard = chain.state["guard"]
    # A rename gives every resource of the cluster a new URN: created anew, the old ones deleted after.
    chain.state = {"stack-key": chain.state["stack-key"]}
    chain.up()
    new_id = json.loads(chain.state["guard"].stdout)["guard_id"]
    assert new_id != json.loads(old_guard.stdout)["guard_id"]
    chain.pending_deletes.append(old_guard)
    chain.up()
    claim = cluster.objects[OWNER_KEY]["data"]
    assert claim["stack"] == STACK and claim["guard"] == new_id, "the old guard's delete released nothing"


# ============================================================================ 15. nothing written before acceptance
def test_an_autopilot_cluster_is_refused_before_anything_is_written(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    cluster.autopilot = True
    error = attempt(chain)
    assert "Autopilot" in error and one_line(error)
    assert writes(world) == [] and OWNER_KEY not in cluster.objects


def test_a_cluster_preflight_refuses_gets_no_claim(tmp_path):
    world, cluster, chain = fleet(tmp_path)
    chain.ctx = context(membership="someone-elses")
    error = attempt(chain)
    assert "membership" in error and writes(world) == [] and OWNER_KEY not in cluster.objects


def test_the_record_and_claim_are_signed_for_this_cluster():
    key = StackKey(bytes(32), STACK)
    ctx, other = context(), context(cluster="dev-cluster-2")
    from meshops.cluster.record import MigrationRecord, signed_document, verified_record

    record = MigrationRecord(stack=STACK, run_id="r", cluster="dev-cluster-1", from_channel="rapid", to_channel="regular",
                             from_revision="asm-managed-rapid", membership="dev-cluster-1", project="my-project-123456",
                             location="asia-northeast1")
    document = signed_document(key, ctx, record)
    assert verified_record(key, ctx, document, "x") == record
    with pytest.raises(StepFailed, match="not signed by this stack"):
        verified_record(key, other, document, "x")  # copied to another cluster
    tampered = {**document, "record": {**document["record"], "phase": "verified"}}
    with pytest.raises(StepFailed, match="not signed by this stack"):
        verified_record(key, ctx, tampered, "x")
