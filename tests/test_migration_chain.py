"""The whole migration chain against the fake cluster and fleet (tests/fake_world.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from meshops.cluster.objects import digest
from meshops.cluster.process import StepFailed
from meshops.context import Decision, Options, StepInput
from meshops.steps import STEPS, wait_ready
from tests.chain_driver import ORDER, Cancelled, Chain, context
from tests.fake_world import FakeWorld, seed_field_report

MUTATING = ("update", "delete", "register", "label", "rollout", "patch", "apply")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Local backups land in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def istio_digests(cluster) -> dict:
    return {key: digest(obj) for key, obj in cluster.istio_objects().items()}


def end_state(world: FakeWorld, cluster) -> dict:
    """Everything that must be the same after an interrupted-and-resumed run as after a clean one."""
    namespaces = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in cluster.list("namespaces", None)}
    return {
        "channel": cluster.channel,
        "istio": istio_digests(cluster),
        "namespaces": namespaces,
        "configmaps": {o["metadata"]["name"]: o.get("data") for o in cluster.list("configmaps", "istio-system")},
        "memberships": sorted(world.memberships),
        "management": {k: m.management for k, m in world.memberships.items()},
        "revision": cluster.installed_revision(),
        "pods_by_revision": Counter(json.loads(p["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"]
                                    for p in cluster.injected_pods()),
        "uninjected_pods": len([k for k in cluster.objects if k[0] == "pods"]) - len(cluster.injected_pods()),
    }


def field_report_run(**options):
    world = FakeWorld()
    cluster = seed_field_report(world)
    chain = Chain(world, context(), Options(stack="dev", **options))
    return world, cluster, chain


def test_field_report_rapid_to_regular():
    world, cluster, chain = field_report_run()
    before = istio_digests(cluster)
    results = chain.up()
    assert results["preflight"]["action"] == "migrate" and results["preflight"]["from_revision"] == "asm-managed-rapid"
    verify = results["verify"]
    assert verify["verified"] is True
    assert (verify["control_plane_state"], verify["revision"], verify["data_plane_state"]) == ("ACTIVE", "asm-managed", "ACTIVE")
    assert verify["proxy_images"] == {"gcr.io/gke-release/asm/proxyv2:1.20.8-asm.33": 4}
    assert cluster.channel == "regular"
    assert istio_digests(cluster) == before, "every Istio object is back, byte for byte after sanitizing"
    labels = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in cluster.list("namespaces", None)}
    assert labels["katayan"] == {"istio-injection": "enabled"}, "istio.io/rev=asm-managed-rapid becomes the channel-agnostic label"
    assert labels["katayan-gateway"] == {"istio-injection": "enabled"}
    strict = cluster.objects[("peerauthentications.security.istio.io", "katayan", "web")]["spec"]
    assert strict == {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "STRICT"}}}
    assert cluster.objects[("configmaps", "istio-system", "istio-asm-managed")]["data"] == {"mesh": "accessLogFile: /dev/stdout\n"}
    assert not any("fleet mesh disable" in " ".join(c) for c in world.calls), "never the fleet-wide disable"


def test_steps_run_in_the_field_report_order():
    world, _, chain = field_report_run()
    chain.up()
    verbs = [" ".join(c[1:5]) for c in world.calls if c[0] == "gcloud"]
    manual = verbs.index("container fleet mesh update")
    channel = next(i for i, c in enumerate(world.calls) if any(a.startswith("--release-channel=") for a in c))
    register = next(i for i, c in enumerate(world.calls) if c[1:5] == ["container", "fleet", "memberships", "register"])
    automatic = max(i for i, c in enumerate(world.calls) if "--management=automatic" in c)
    crd_delete = next(i for i, c in enumerate(world.calls) if c[0] == "kubectl" and c[2:4] == ["delete", "customresourcedefinitions"])
    manual_call = next(i for i, c in enumerate(world.calls) if "--management=manual" in c)
    assert manual_call < crd_delete < channel < register < automatic
    assert manual >= 0


def test_every_kubectl_call_names_the_private_kubeconfig():
    world, _, chain = field_report_run()
    chain.up()
    kubectl = [c for c in world.calls if c[0] == "kubectl"]
    assert kubectl and all(c[1].startswith("--kubeconfig=") and "gke-mesh-" in c[1] for c in kubectl)
    assert not Path(kubectl[0][1].split("=", 1)[1]).exists(), "the kubeconfig is removed after the step"


def test_stalled_without_connectgateway_is_diagnosed_on_the_first_poll():
    world, cluster, chain = field_report_run()
    world.enabled_apis.discard("connectgateway.googleapis.com")
    with pytest.raises(StepFailed) as raised:
        chain.up()
    message = str(raised.value)
    assert "REVISION_STALLED" in message and "connectgateway.googleapis.com API is off" in message
    assert "gcloud services enable connectgateway.googleapis.com --project my-project-123456" in message
    assert "\n" not in message
    polls = [line for line in world.log if "wait-ready: poll" in line]
    assert len(polls) == 1, "STALLED is reported on the first poll that sees it"
    # The operator applies the fix; the next `pulumi up` resumes at wait-ready and finishes.
    world.enabled_apis.add("connectgateway.googleapis.com")
    world(["gcloud", "container", "fleet", "mesh", "update", "--management=automatic", "--memberships=dev-cluster-1",
           "--project=my-project-123456", "--location=asia-northeast1"])
    assert chain.up()["verify"]["verified"] is True


def test_data_plane_is_disabled_until_workloads_are_reinjected():
    world, cluster, chain = field_report_run()
    with pytest.raises(Cancelled):
        chain.up(stop_after="wait-ready")
    describe = json.loads(world(["gcloud", "container", "fleet", "mesh", "describe", "--project=my-project-123456", "--format=json"]))
    (state,) = describe["membershipStates"].values()
    assert state["servicemesh"]["controlPlaneManagement"]["state"] == "ACTIVE"
    assert state["servicemesh"]["dataPlaneManagement"]["state"] == "DISABLED"
    assert chain.up()["verify"]["data_plane_state"] == "ACTIVE"


def test_membership_name_differing_from_the_cluster_name():
    world = FakeWorld()
    seed_field_report(world, membership="dev-membership-7")
    wrong = Chain(world, context(), Options(stack="dev"))
    with pytest.raises(StepFailed, match=r"configured membership dev-cluster-1 \(asia-northeast1\) does not exist; "
                                         r"the membership of this cluster is dev-membership-7 \(asia-northeast1\)"):
        wrong.up()
    assert not [c for c in world.calls if any(v in c[:4] for v in MUTATING)], "a wrong membership stops before any change"
    results = Chain(world, context(membership="dev-membership-7"), Options(stack="dev")).up()
    assert results["verify"]["verified"] is True
    assert ("asia-northeast1", "dev-membership-7") in world.memberships and len(world.memberships) == 1


def test_crds_coming_back_are_purged_again():
    world, cluster, chain = field_report_run()
    with pytest.raises(Cancelled):
        chain.up(stop_after="purge")
    crd_rounds = [line for line in world.log if "purge: round" in line]
    assert len(crd_rounds) == 2, crd_rounds
    assert not [k for k in cluster.objects if k[0] == "customresourcedefinitions"]
    assert not [k for k in cluster.objects if k[0] in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")]
    assert not {("namespaces", "", "istio-system"), ("namespaces", "", "asm-system")} & set(cluster.objects)
    assert not [k for k in cluster.objects if k[1] == "kube-system" and k[2] in ("mdp-controller", "istio-cni-node", "istio-cni-plugin-config")]
    assert chain.results()["purge"]["removed"] >= 20


def test_purge_keeps_crds_when_asked():
    world, cluster, chain = field_report_run(purge_crds=False)
    with pytest.raises(Cancelled):
        chain.up(stop_after="purge")
    assert ("customresourcedefinitions", "", "virtualservices.networking.istio.io") in cluster.objects
    assert ("virtualservices.networking.istio.io", "katayan", "katayan-virtualservice") in cluster.objects


def clean_run_profile() -> tuple[dict, dict[str, int]]:
    """An uninterrupted run, made once at import, in a throwaway folder."""
    import os
    import tempfile

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            world, cluster, chain = field_report_run()
            chain.up()
        finally:
            os.chdir(here)
    return end_state(world, cluster), chain.calls_by_step


CLEAN_END, CALLS = clean_run_profile()
FAULTS = [(step, where) for step in ORDER if CALLS.get(step) for where in ("first", "last")]


@pytest.mark.parametrize("step,where", FAULTS, ids=[f"{s}-{w}" for s, w in FAULTS])
def test_fault_at_each_step_then_rerun_reaches_the_same_end_state(step, where):
    world, cluster, chain = field_report_run()
    before = istio_digests(cluster)
    offset = sum(CALLS[s] for s in ORDER[: ORDER.index(step)])
    world.fail_at_call(offset + (0 if where == "first" else CALLS[step] - 1))
    with pytest.raises(StepFailed, match="injected fault"):
        chain.up()
    assert step not in chain.state, "the failed step is not recorded, so the next up runs it again"
    results, failures = chain.up_until_done()
    assert failures == []
    assert results["verify"]["verified"] is True
    assert end_state(world, cluster) == CLEAN_END
    assert istio_digests(cluster) == before, "zero Istio objects lost"


def test_first_up_on_an_aligned_cluster_changes_nothing():
    world = FakeWorld()
    cluster = seed_field_report(world, channel="regular")
    before = json.dumps(sorted(cluster.objects.items(), key=str), sort_keys=True)
    results = Chain(world, context(), Options(stack="dev")).up()
    assert results["preflight"]["action"] == "skip"
    assert all(results[s].get("skipped") for s in ORDER if s not in ("stack-key", "guard", "preflight", "release-channel", "verify"))
    assert results["release-channel"]["changed"] is False
    assert results["verify"]["verified"] is True
    mutating = [c for c in world.calls if c[0] == "gcloud" and any(v in c[:5] for v in MUTATING)
                or c[0] == "kubectl" and c[2] in MUTATING]
    assert mutating == []
    claimed = cluster.objects.pop(("configmaps", "kube-system", "gke-mesh-owner"))
    assert claimed["data"]["stack"] == "dev" and set(claimed["data"]) == {"stack", "guard", "mac"}, \
        "the only write: preflight's signed claim on the cluster"
    assert json.dumps(sorted(cluster.objects.items(), key=str), sort_keys=True) == before
    assert not Path("backups").exists(), "no backup is written for a skip"


def test_modernization_in_progress_is_refused_before_any_change():
    world, _, chain = field_report_run()
    (member,) = world.memberships.values()
    member.conditions = [{"code": "MODERNIZATION_IN_PROGRESS", "details": "in progress", "severity": "WARNING"}]
    with pytest.raises(StepFailed, match="MODERNIZATION_IN_PROGRESS"):
        chain.up()
    assert list(chain.state) == ["stack-key", "guard"], "nothing of the chain is in state: the next up starts at preflight"


def test_purge_refuses_without_a_verified_backup():
    """A backup reference in state whose backup is not where it says: nothing is deleted."""
    world, cluster, chain = field_report_run()
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    for path in Path("backups").rglob("backup.json"):
        path.unlink()
    objects = json.dumps(sorted(cluster.objects.items(), key=str))
    with pytest.raises(StepFailed, match="refusing to purge cluster dev-cluster-1: no backup at .*backup.json is missing"):
        chain.up()
    assert json.dumps(sorted(cluster.objects.items(), key=str)) == objects


def test_purge_refuses_a_tampered_backup():
    world, cluster, chain = field_report_run()
    with pytest.raises(Cancelled):
        chain.up(stop_after="backup")
    (content,) = Path("backups").rglob("backup.json")
    content.write_text(content.read_text().replace("katayan-gateway", "tampered"))
    with pytest.raises(StepFailed, match="does not match its sha256"):
        chain.up()
    assert ("customresourcedefinitions", "", "virtualservices.networking.istio.io") in cluster.objects


def test_backup_to_a_bucket(tmp_path):
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    before = istio_digests(cluster)
    results = Chain(world, context(), Options(stack="dev", backup_uri="gs://mesh-backups/moves")).up()
    assert results["backup"]["backup"]["location"].startswith("gs://mesh-backups/moves/dev/dev-cluster-1/rapid-to-regular/")
    stored = list((tmp_path / "gcs" / "mesh-backups" / "moves").rglob("manifest.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["total"] == 8
    assert istio_digests(cluster) == before


def test_authorization_policies_removed_on_request_and_restored():
    world, cluster, chain = field_report_run(remove_authorization_policies=True)
    with pytest.raises(Cancelled):
        chain.up(stop_after="relax-security")
    assert chain.results()["relax-security"]["removed"] == 1, "a count: the names are in the record"
    record = json.loads(cluster.objects[("configmaps", "kube-system", "gke-mesh-migration")]["data"]["record"])
    assert record["removed_policies"] == ["katayan/allow-gateway"]
    assert ("authorizationpolicies.security.istio.io", "katayan", "allow-gateway") not in cluster.objects
    chain.up()
    assert ("authorizationpolicies.security.istio.io", "katayan", "allow-gateway") in cluster.objects


def test_without_reregistration_the_chain_still_completes():
    world, cluster, chain = field_report_run()
    chain.reregister = False
    assert chain.up()["verify"]["verified"] is True
    assert not [c for c in world.calls if "register" in c[:5]]


def test_without_restarts_verify_reports_the_stale_proxies():
    world, cluster, chain = field_report_run(restart_workloads=False)
    with pytest.raises(StepFailed, match=r"not verified: .*4 pods not on asm-managed"):
        chain.up()


def test_wait_ready_times_out_with_the_last_state():
    world, cluster, chain = field_report_run(wait_timeout_seconds=120)
    with pytest.raises(StepFailed, match=r"not ready after 120s \(control plane PROVISIONING"):
        chain.up()


def test_wrong_revision_active_is_a_clear_failure():
    world = FakeWorld()
    seed_field_report(world)
    decision = Decision("migrate", "t", "rapid", "regular", "asm-managed-rapid", "asm-managed", "dev-cluster-1", "ISTIOD", "r")
    with pytest.raises(StepFailed, match="ACTIVE on asm-managed-rapid, expected asm-managed"):
        wait_ready.run(StepInput(context(), Options(), decision), world.tools())


def test_backup_calls_grow_with_kinds_not_objects():
    def backup_calls(extra: int) -> int:
        world = FakeWorld()
        cluster = seed_field_report(world)
        for i in range(extra):
            cluster.put("virtualservices.networking.istio.io", {"metadata": {"name": f"vs-{i}", "namespace": "katayan"}, "spec": {"hosts": [f"h{i}"]}})
        chain = Chain(world, context(), Options(stack=f"objects-{extra}"))
        with pytest.raises(Cancelled):
            chain.up(stop_after="backup")
        assert chain.results()["backup"]["reused"] is False
        return chain.calls_by_step["backup"]
    assert backup_calls(0) == backup_calls(500) > 0


def test_every_step_has_a_plan_entry_and_options_that_exist():
    for name, step in STEPS.items():
        assert set(step.OPTIONS) <= set(Options.__dataclass_fields__), name
        assert step.commands(StepInput(context(), Options(), Decision.placeholder(context()))), name


def test_pods_injected_through_the_default_tag_count_as_on_its_revision():
    from meshops.cluster.inventory import tags_of
    from meshops.steps.verify import pod_revision

    hooks = [{"metadata": {"name": "istio-revision-tag-default", "labels": {"istio.io/rev": "asm-managed"}}},
             {"metadata": {"name": "istiod-asm-managed", "labels": {"istio.io/rev": "asm-managed"}}}]
    pod = {"metadata": {"annotations": {"sidecar.istio.io/status": json.dumps({"revision": "default"})}}}
    tags = tags_of(hooks)
    assert tags == {"default": "asm-managed"}
    assert tags.get(pod_revision(pod), pod_revision(pod)) == "asm-managed"


def test_purge_refuses_to_destroy_user_workloads_in_istio_system():
    world, cluster, chain = field_report_run()
    cluster.put("deployments", {"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}, "spec": {"replicas": 2}})
    with pytest.raises(StepFailed, match=r"cluster dev-cluster-1: the purge would delete .*istio-system/deployment/istio-ingressgateway"):
        chain.up()
    assert ("namespaces", "", "istio-system") in cluster.objects
    assert ("customresourcedefinitions", "", "virtualservices.networking.istio.io") in cluster.objects
    assert ("deployments", "istio-system", "istio-ingressgateway") in cluster.objects
    assert "preflight" not in chain.state, "refused in preflight, before anything changed"
    assert not [c for c in world.calls if any(v in c[:4] for v in MUTATING)]


def test_what_istio_system_holds_besides_istio_objects_is_archived_before_the_purge():
    world, cluster, chain = field_report_run()
    cluster.put("configmaps", {"metadata": {"name": "my-settings", "namespace": "istio-system"}, "data": {"a": "b"}})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gateway-tls", "namespace": "istio-system"},
              "data": {"tls.crt": "Y2VydA=="}}
    cluster.objects[("secrets", "istio-system", "gateway-tls")] = secret
    results = chain.up()
    assert results["backup"]["archived"] >= 3
    (content,) = Path("backups").rglob("backup.json")
    names = {o["metadata"]["name"] for o in json.loads(content.read_text())["archive"]}
    assert {"my-settings", "gateway-tls", "istio-asm-managed-rapid"} <= names
    assert oct(content.stat().st_mode & 0o777) == "0o600"
    assert ("secrets", "istio-system", "gateway-tls") not in cluster.objects, "the purge deleted it; the archive holds it"


def test_restore_fits_the_versions_the_new_channels_crds_serve():
    """A backup read at networking.istio.io/v1 goes back onto CRDs that serve only
    v1alpha3/v1beta1 (an older channel's Istio): restore applies each object at the version
    the new CRD stores, and digests ignore the version."""
    world, cluster, chain = field_report_run()
    with pytest.raises(Cancelled):
        chain.up(stop_after="wait-ready")
    older = cluster.objects[("customresourcedefinitions", "", "virtualservices.networking.istio.io")]
    older["spec"]["versions"] = [{"name": "v1alpha3", "served": True, "storage": True}, {"name": "v1beta1", "served": True, "storage": False}]
    results = chain.up()
    assert results["verify"]["verified"] is True
    assert cluster.list("virtualservices.networking.istio.io", "katayan")[0]["apiVersion"] == "networking.istio.io/v1alpha3"


@pytest.mark.parametrize("code,severity,blocks", [
    ("MODERNIZATION_IN_PROGRESS", "INFO", True), ("MODERNIZATION_SCHEDULED", "INFO", False),
    ("MODERNIZATION_WILL_BE_SCHEDULED", "INFO", False), ("MODERNIZATION_COMPLETED", "INFO", False),
    ("MODERNIZATION_ABORTED", "WARNING", False), ("MODERNIZATION_SOMETHING_NEW", "WARNING", True),
    ("MODERNIZATION_SOMETHING_NEW", "INFO", False)])
def test_only_a_modernization_under_way_stops_the_migration(code, severity, blocks):
    world, _, chain = field_report_run()
    (member,) = world.memberships.values()
    member.conditions = [{"code": code, "details": "", "severity": severity}]
    if blocks:
        with pytest.raises(StepFailed, match=code):
            chain.up()
    else:
        assert chain.up()["verify"]["verified"] is True


def test_a_same_named_cluster_of_another_project_is_not_mistaken_for_this_one():
    """preflight resolves the project number and matches it exactly: the configured
    membership registering another team's dev-cluster-1 (same name and location, another
    project number) is refused before anything changes."""
    from tests.fake_world import FakeCluster, Membership

    world = FakeWorld()
    seed_field_report(world, membership="dev-membership-7")
    elsewhere = FakeCluster("999999999999", "asia-northeast1", "dev-cluster-1", "rapid")
    world.memberships[("asia-northeast1", "dev-cluster-1")] = Membership(elsewhere)
    with pytest.raises(StepFailed, match="configured membership dev-cluster-1 .* registers another cluster; "
                                         "the membership of this cluster is dev-membership-7"):
        Chain(world, context(), Options(stack="dev")).up()
    assert not [c for c in world.calls if any(v in c[:4] for v in MUTATING)]


def test_operator_objects_with_finalizers_do_not_hang_the_crd_deletion():
    """An IstioOperator left by an in-cluster install keeps a finalizer no operator removes
    on a managed mesh: purge clears it (the object is in the backup) before deleting CRDs."""
    from tests.fake_world import crd_object

    world, cluster, chain = field_report_run(accept_traffic_director=True)  # an IstioOperator asks for it
    cluster.put("customresourcedefinitions", crd_object("install.istio.io", "istiooperators", "IstioOperator"))
    cluster.put("istiooperators.install.istio.io", {"metadata": {"name": "installed-state", "namespace": "istio-system",
                                                                 "finalizers": ["istio-finalizer.install.istio.io"]},
                                                    "spec": {"profile": "default"}})
    results = chain.up()
    assert results["verify"]["verified"] is True
    assert results["restore"]["archived_kinds"] == ["istiooperators.install.istio.io"], "kept in the backup, not re-applied"
    assert ("customresourcedefinitions", "", "istiooperators.install.istio.io") not in cluster.objects
    assert not [line for line in world.log if "changed since the backup" in line], \
        "an archived kind that is no longer served is not a teammate's deletion"


def test_the_cni_is_deleted_in_the_foreground():
    world, cluster, chain = field_report_run()
    chain.up()
    (cni,) = [c for c in world.calls if c[0] == "kubectl" and c[2:5] == ["delete", "daemonset", "istio-cni-node"]]
    assert "--cascade=foreground" in cni and "--wait=true" in cni


def gateway_images(cluster) -> list[str]:
    return sorted(c["image"] for (r, ns, _), p in cluster.objects.items() if r == "pods" and ns == "katayan-gateway"
                  and p["metadata"]["name"].startswith("ingress-") for c in p["spec"]["containers"])


def test_gateways_keep_serving_through_uninject_and_come_back_on_the_new_revision():
    """A gateway restarted without an injector cannot pull `image: auto` (issue "Correct on a
    real fleet", item 12; testbed/managed_mesh shows it on a real API server)."""
    world, cluster, chain = field_report_run()
    cluster.add_deployment("katayan-gateway", "ingress", replicas=2, gateway=True)
    assert gateway_images(cluster) == ["gcr.io/gke-release/asm/proxyv2:1.22.1-asm.1"] * 2
    with pytest.raises(Cancelled):
        chain.up(stop_after="purge")
    assert gateway_images(cluster) == ["gcr.io/gke-release/asm/proxyv2:1.22.1-asm.1"] * 2, "not restarted: still serving"
    uninject = json.loads(chain.state["uninject"].stdout)
    assert (uninject["gateways_kept"], uninject["restarted"]) == (1, 2), "the gateway kept, both web deployments restarted"
    chain.up()
    assert gateway_images(cluster) == ["gcr.io/gke-release/asm/proxyv2:1.20.8-asm.33"] * 2, "restarted by reinject on the new revision"


def test_progress_lines_count_orphan_pods_without_naming_them():
    """uninject's output is secret in state; its progress line must not name cluster objects (issue 12 item 13)."""
    world, cluster, chain = field_report_run()
    cluster.put("pods", {"metadata": {"name": "hand-made-debug-pod", "namespace": "katayan",
                                      "annotations": {"sidecar.istio.io/status": json.dumps({"revision": "asm-managed-rapid"})}},
                         "spec": {"containers": [{"name": "app", "image": "example/app:1"},
                                                 {"name": "istio-proxy", "image": "gcr.io/gke-release/asm/proxyv2:1.22.1-asm.1"}]}})
    with pytest.raises(Cancelled):
        chain.up(stop_after="uninject")
    lines = [line for line in world.log if "uninject:" in line]
    assert any("1 pods without a restartable owner" in line for line in lines)
    assert not any("hand-made-debug-pod" in line for line in lines)
    assert json.loads(chain.state["uninject"].stdout)["not_restarted"] == 1


def test_a_namespace_labelled_with_a_revision_tag_gets_the_new_revisions_sidecar():
    """The purge deletes every istio-revision-tag-* webhook; a namespace labelled with a tag
    that pointed at the managed revision must be injected again (issue "Correct on a real
    fleet", item 10)."""
    world, cluster, chain = field_report_run()
    cluster.put("mutatingwebhookconfigurations", {"metadata": {"name": "istio-revision-tag-prod-stable",
                                                               "labels": {"istio.io/rev": "asm-managed-rapid", "istio.io/tag": "prod-stable"}}})
    cluster.put("namespaces", {"metadata": {"name": "shop", "labels": {"istio.io/rev": "prod-stable"}}})
    cluster.add_deployment("shop", "cart")
    assert {p["metadata"]["namespace"] for p in cluster.injected_pods("asm-managed-rapid")} >= {"shop"}
    assert chain.up()["verify"]["verified"] is True
    shop = [p for p in cluster.injected_pods() if p["metadata"]["namespace"] == "shop"]
    assert len(shop) == 2 and all(json.loads(p["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"] == "asm-managed"
                                  for p in shop), "restarted onto the new revision, not without a sidecar"
    assert (cluster.objects[("namespaces", "", "shop")]["metadata"]["labels"] or {}) == {"istio-injection": "enabled"}


def test_istio_mutual_destination_rules_are_relaxed_for_the_move_and_come_back():
    """Issue "Correct on a real fleet", item 13: a proxy that keeps running (a gateway) must
    not insist on mTLS towards workloads whose sidecar is gone; the rule is restored after."""
    world, cluster, chain = field_report_run()
    key = ("destinationrules.networking.istio.io", "katayan", "web")
    with pytest.raises(Cancelled):
        chain.up(stop_after="relax-security")
    assert "tls" not in cluster.objects[key]["spec"]["trafficPolicy"], "auto mTLS during the move"
    assert json.loads(chain.state["relax-security"].stdout)["relaxed_destination_rules"] == 1
    results = chain.up()  # resumed: the drift check must see the relaxation as ours, not a teammate's edit
    assert results["verify"]["verified"] is True
    assert cluster.objects[key]["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert list(Path("backups").rglob("manifest.json")) and not list(Path("backups").rglob("supplement-*")), \
        "no supplementary backup of the relaxed rule"


def test_istio_objects_labelled_for_the_old_revision_are_restored_for_the_new_one():
    """Issue "Correct on a real fleet", item 11: a revision skips config labelled for another;
    restore moves the label (also through a tag that pointed at the old revision), and
    verify and the drift check compare with the backup as restored, so no supplement."""
    world, cluster, chain = field_report_run()
    cluster.put("mutatingwebhookconfigurations", {"metadata": {"name": "istio-revision-tag-prod-stable",
                                                               "labels": {"istio.io/rev": "asm-managed-rapid", "istio.io/tag": "prod-stable"}}})
    sidecar = ("sidecars.networking.istio.io", "katayan", "egress")
    tagged = ("telemetries.telemetry.istio.io", "katayan", "tagged")
    other = ("sidecars.networking.istio.io", "katayan", "elsewhere")
    cluster.put(sidecar[0], {"metadata": {"name": "egress", "namespace": "katayan", "labels": {"istio.io/rev": "asm-managed-rapid"}},
                             "spec": {"egress": [{"hosts": ["./*"]}]}})
    cluster.put(tagged[0], {"metadata": {"name": "tagged", "namespace": "katayan", "labels": {"istio.io/rev": "prod-stable"}},
                            "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]}})
    cluster.put(other[0], {"metadata": {"name": "elsewhere", "namespace": "katayan", "labels": {"istio.io/rev": "my-own-istiod"}},
                           "spec": {"egress": [{"hosts": ["./*"]}]}})
    assert chain.up()["verify"]["verified"] is True
    labels = {key: cluster.objects[key]["metadata"]["labels"]["istio.io/rev"] for key in (sidecar, tagged, other)}
    assert labels == {sidecar: "asm-managed", tagged: "asm-managed", other: "my-own-istiod"}, "only labels for the old revision move"
    assert not list(Path("backups").rglob("supplement-*")), "the moved labels are restore's doing, not drift"
    assert chain.up()["verify"]["verified"] is True, "and a later run still verifies"
