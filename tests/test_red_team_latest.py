"""Red team, third pass: the last hour's changes (ISTIO_MUTUAL taken out of DestinationRules,
a membership this migration deleted, fleet features bound to the membership, revision tags,
gateways through uninject). Every test asserts a README claim; a failing test is a broken claim."""

from __future__ import annotations

import pytest

from meshops.context import Options
from tests.chain_driver import Chain, context
from tests.fake_world import FakeWorld, seed_field_report
from tests.test_nothing_lost import in_tmp, mesh_view, record_of  # noqa: F401  (in_tmp: autouse)
from tests.test_red_team import attempt

BUCKET = "gs://mesh-backups/moves"
DR = "destinationrules.networking.istio.io"


def fleet(tmp_path, **options):
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    return world, cluster, Chain(world, context(), Options(stack="dev", backup_uri=BUCKET, **options))


def tls_modes(dr: dict) -> list:
    spec = dr.get("spec") or {}
    found = [((spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode")]
    for port in (spec.get("trafficPolicy") or {}).get("portLevelSettings") or []:
        found.append((port.get("tls") or {}).get("mode"))
    for subset in spec.get("subsets") or []:
        tp = subset.get("trafficPolicy") or {}
        found.append((tp.get("tls") or {}).get("mode"))
        for port in tp.get("portLevelSettings") or []:
            found.append((port.get("tls") or {}).get("mode"))
    return found


# ============================================================================ 1. DestinationRules
@pytest.mark.parametrize("stop_after", ["relax-security", "purge"])
def test_a_subset_added_to_a_relaxed_destination_rule_does_not_keep_it_without_mutual_tls(tmp_path, stop_after):
    """README "Nothing lost" / "no abort path leaves security relaxed": relax-security took
    ISTIO_MUTUAL out of DR katayan/web; a teammate adds a subset to it before the retry.
    The edit is theirs, the missing tls is ours: after the migration ISTIO_MUTUAL must be back."""
    world, cluster, chain = fleet(tmp_path, purge_crds=False)
    assert attempt(chain, stop_after=stop_after) == stop_after
    dr = cluster.objects[(DR, "katayan", "web")]
    assert "tls" not in dr["spec"]["trafficPolicy"], "precondition: relaxed"
    dr["spec"]["subsets"] = [{"name": "v2", "labels": {"version": "v2"}}]
    results = chain.up()
    assert results["verify"]["verified"] is True
    live = cluster.objects[(DR, "katayan", "web")]
    assert live["spec"]["subsets"] == [{"name": "v2", "labels": {"version": "v2"}}], "the teammate's subset is kept"
    assert live["spec"]["trafficPolicy"].get("tls") == {"mode": "ISTIO_MUTUAL"}, \
        "verified: true with the DestinationRule left without ISTIO_MUTUAL (the supplement took the relaxed rule)"


def test_status_says_security_is_relaxed_when_only_destination_rules_are(tmp_path, monkeypatch):
    """README "When a migration fails": `meshops status` reads "how far it got" and whether
    security is relaxed (breakglass: "security relaxed or not"). A mesh whose mTLS is
    enforced by DestinationRules (ISTIO_MUTUAL) and no STRICT PeerAuthentication: after
    relax-security the DRs have no tls, yet status says "security as in the backup"."""
    from meshops.cluster import breakglass
    from tests.chain_driver import context as ctx_of

    world, cluster, chain = fleet(tmp_path)
    for key in [k for k in cluster.objects if k[0] == "peerauthentications.security.istio.io"]:
        del cluster.objects[key]
    assert attempt(chain, stop_after="relax-security") == "relax-security"
    assert "tls" not in cluster.objects[(DR, "katayan", "web")]["spec"]["trafficPolicy"], "precondition: relaxed"
    status = breakglass.cluster_status(breakglass.Target(ctx_of(), "dev", BUCKET, chain.key()), world)
    assert status["security_differs_from_backup"], "status reports security as in the backup while ISTIO_MUTUAL is gone"


# ============================================================================ 2. a membership this migration deleted
REGISTER = ["gcloud", "container", "fleet", "memberships", "register"]


def register(world, name: str) -> None:
    world([*REGISTER, name, "--gke-uri=https://container.googleapis.com/v1/projects/my-project-123456/locations/"
           "asia-northeast1/clusters/dev-cluster-1", "--enable-workload-identity", "--project=my-project-123456",
           "--location=asia-northeast1"])


def automatic(world, name: str) -> None:
    world(["gcloud", "container", "fleet", "mesh", "update", "--management=automatic", f"--memberships={name}",
           "--project=my-project-123456", "--location=asia-northeast1"])


def purge_watch(world, cluster) -> list[str]:
    """Every purge deletion made while a membership of this cluster has mesh management
    AUTOMATIC (Google re-creates what the purge deletes; README: purge stops on
    "management not MANUAL")."""
    seen: list[str] = []

    def spy(argv):
        if argv[0] == "kubectl" and argv[2] == "delete" and "gke-mesh-migration" not in argv:
            auto = [n for (_, n), m in world.memberships.items() if m.cluster is cluster and m.management == "MANAGEMENT_AUTOMATIC"]
            if auto:
                seen.append(f"{' '.join(argv[2:4])} while {auto} is AUTOMATIC")
        return False

    world.fail(spy, "never")
    return seen


@pytest.mark.parametrize("stopped", ["register refused", "rollout timed out"])
def test_a_cluster_registered_under_another_name_meanwhile_is_not_purged_under_automatic_management(tmp_path, stopped):
    """The record reached "registered"; the configured membership is gone; a teammate
    registered the cluster as `team-b-name` and switched it to automatic management (the
    fix in the June 2025 Zenn write-up 'GKE Service Mesh のリリースチャンネル変更と再インストール手順').
    The PR is reverted. Preflight takes the missing membership as this
    migration's doing, disable-management has "nothing to switch", purge's require_manual
    accepts the missing membership: the cluster's control plane is deleted while its real
    membership is AUTOMATIC. Claim: preflight names the membership that registers the
    cluster, or purge refuses while management is not MANUAL."""
    world, cluster, chain = fleet(tmp_path)
    if stopped == "register refused":
        world.fail(lambda argv: argv[:5] == REGISTER, "PERMISSION_DENIED")
        assert "PERMISSION_DENIED" in attempt(chain)
        assert ("asia-northeast1", "dev-cluster-1") not in world.memberships
    else:
        world.fail(lambda argv: argv[0] == "kubectl" and argv[2:4] == ["rollout", "status"], "rollout timed out")
        assert "rollout timed out" in attempt(chain)
        # the teammate "renames" the membership
        world(["gcloud", "container", "fleet", "memberships", "delete", "dev-cluster-1", "--project=my-project-123456",
               "--location=asia-northeast1", "--quiet"])
    assert record_of(cluster)["phase"] in ("registered", "reinjected")
    register(world, "team-b-name")
    automatic(world, "team-b-name")
    world.sleep(3600)
    world(["gcloud", "container", "fleet", "mesh", "describe", "--project=my-project-123456", "--format=json"])
    seen = purge_watch(world, cluster)
    chain.ctx = context(channel="rapid")  # the PR is reverted
    outcome = attempt(chain)
    assert not seen, f"purged under automatic management ({outcome[:80]}): {seen[:3]}"


# ============================================================================ 3. fleet features bound to the membership
RELEASE_CHANNEL = ["gcloud", "container", "clusters", "update"]
DELETE_MEMBERSHIP = ["gcloud", "container", "fleet", "memberships", "delete"]


def config_sync_on(world, key_project: str = "123456789012") -> None:
    world.other_features.append({"name": "projects/my-project-123456/locations/global/features/configmanagement",
                                 "membershipSpecs": {f"projects/{key_project}/locations/asia-northeast1/memberships/dev-cluster-1":
                                                     {"configmanagement": {"configSync": {"enabled": True}}}}})


def membership_deletions(world) -> list:
    return [c for c in world.calls if c[:5] == DELETE_MEMBERSHIP]


@pytest.mark.parametrize("then", ["retry", "revert"])
def test_a_feature_bound_after_the_backup_is_refused_before_the_membership_is_deleted(tmp_path, then):
    """README "What can stop a migration": fleet features bound to the membership refuse
    "before anything changes" unless listed in acceptMembershipFeatures, because
    re-registration deletes their per-membership specs. The check runs in the backup step
    only, and a resumed run reuses the backup and returns before it. GKE refuses the channel
    change after the purge; a teammate turns Config Sync on for the membership meanwhile;
    the retry (or a revert) re-registers, dropping the Config Sync spec unacknowledged."""
    world, cluster, chain = fleet(tmp_path)
    world.fail(lambda argv: argv[:4] == RELEASE_CHANNEL, "quota exceeded")
    assert "quota exceeded" in attempt(chain)
    config_sync_on(world)
    calls = len(world.calls)
    if then == "revert":
        chain.ctx = context(channel="rapid")
    outcome = attempt(chain)
    deleted = [c for c in world.calls[calls:] if c[:5] == DELETE_MEMBERSHIP]
    assert not deleted, f"the membership with Config Sync bound was deleted unacknowledged ({outcome[:60]})"


def test_turning_reregistration_on_mid_migration_checks_bound_features(tmp_path):
    """The backup ran with reregisterMembership: false (no check: nothing to drop); the run
    stops after the purge; the next PR turns reregisterMembership on (the 2025 write-up says
    management comes back only after re-registering). reregister-membership is a new
    resource: it is created and runs, deleting the membership Config Sync is bound to;
    backup (reused) never looks at features again."""
    world = FakeWorld(gcs_root=tmp_path / "gcs")
    cluster = seed_field_report(world)
    config_sync_on(world)
    chain = Chain(world, context(), Options(stack="dev", backup_uri=BUCKET, reregister_membership=False), reregister=False)
    world.fail(lambda argv: argv[:4] == RELEASE_CHANNEL, "quota exceeded")
    assert "quota exceeded" in attempt(chain)
    chain.options = Options(stack="dev", backup_uri=BUCKET, reregister_membership=True)
    chain.reregister = True
    outcome = attempt(chain)
    assert not membership_deletions(world), f"the membership with Config Sync bound was deleted unacknowledged ({outcome[:60]})"


@pytest.mark.parametrize("key", ["my-project-123456", "123456789012"])
def test_a_feature_keyed_by_project_id_or_number_is_refused(tmp_path, key):
    """HELD? The check matches membership keys by fleet project id or number."""
    world, cluster, chain = fleet(tmp_path)
    config_sync_on(world, key)
    outcome = attempt(chain)
    assert "configmanagement" in outcome and not membership_deletions(world)


# ============================================================================ 4. revision tags
def tag(cluster, name: str, revision: str) -> None:
    cluster.put("mutatingwebhookconfigurations", {"metadata": {"name": f"istio-revision-tag-{name}",
                                                               "labels": {"istio.io/rev": revision, "istio.io/tag": name}}})


def label(cluster, ns: str, labels: dict) -> None:
    cluster.objects[("namespaces", "", ns)]["metadata"]["labels"] = labels


def test_namespaces_on_the_default_tag_and_a_managed_tag_run_injected_pods_again(tmp_path):
    """HELD: `istio.io/rev=default` and a tag `prod` -> asm-managed-rapid are relabelled for
    injection; their workloads run sidecars of the new revision and verify passes."""
    world, cluster, chain = fleet(tmp_path)
    tag(cluster, "prod", "asm-managed-rapid")
    label(cluster, "katayan", {"istio.io/rev": "prod"})
    label(cluster, "katayan-gateway", {"istio.io/rev": "default"})
    for ns in ("katayan", "katayan-gateway"):
        cluster.start_pods(ns, "Deployment", "web", 2)
    before = mesh_view(cluster)
    assert before["injected"] == ["katayan", "katayan-gateway"]
    assert chain.up()["verify"]["verified"] is True
    assert mesh_view(cluster)["injected"] == before["injected"]


def test_a_dangling_tag_does_not_inject_a_namespace_that_ran_without_sidecars(tmp_path):
    """A tag `canary` whose revision (asm-managed-stable) is not installed: namespace `batch`
    labelled `istio.io/rev=canary` runs plain pods (no webhook serves it). relabel maps the
    tag to a managed revision and labels `batch` istio-injection=enabled: after the move its
    workloads get sidecars they never had (and STRICT peers). Claim: the cluster equal to its
    backup -- injected namespaces as they were."""
    world, cluster, chain = fleet(tmp_path)
    cluster.put("namespaces", {"metadata": {"name": "batch", "labels": {"istio.io/rev": "canary"}}})
    tag(cluster, "canary", "asm-managed-stable")
    cluster.add_deployment("batch", "job")
    before = mesh_view(cluster)
    assert "batch" not in before["injected"], "precondition: batch runs without sidecars"
    results = chain.up()
    assert results["verify"]["verified"] is True
    assert "batch" not in mesh_view(cluster)["injected"], "batch was injected by the migration"


# ============================================================================ 5. gateways through uninject
def test_a_gateway_keeps_its_proxy_through_uninject_and_runs_the_new_one_after(tmp_path):
    """HELD: the gateway is not restarted by uninject (image: auto would not pull), is
    restarted by reinject onto the new revision, and verify proves it."""
    world, cluster, chain = fleet(tmp_path)
    cluster.add_deployment("katayan-gateway", "ingress", gateway=True)
    assert attempt(chain, stop_after="purge") == "purge"
    pods = [o for (r, ns, _), o in cluster.objects.items() if r == "pods" and ns == "katayan-gateway" and "ingress" in o["metadata"]["name"]]
    assert pods and all(c["image"] != "auto" for p in pods for c in p["spec"]["containers"])
    assert chain.up()["verify"]["verified"] is True
    gw = [o for (r, ns, _), o in cluster.objects.items() if r == "pods" and ns == "katayan-gateway"
          and o["metadata"].get("ownerReferences", [{}])[0].get("name") == "ingress-rs"]
    assert gw and all("asm-managed\"" in p["metadata"]["annotations"]["sidecar.istio.io/status"] for p in gw)
