"""Back up every Istio custom resource, the injection labels, which namespaces run
injected pods and the mesh config maps; read the backup back and verify it; record it.

One migration, one backup: when the migration record already names a backup (a resumed
run), that backup is verified and reused, never replaced by a snapshot of a cluster that
may by now be partly dismantled.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.backup_store import BackupStore, check_bucket, planned_writes, read_backup
from meshops.cluster.inventory import collect
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.objects import IGNORED_BY_TRAFFIC_DIRECTOR
from meshops.cluster.preconditions import features_bound_to, features_refusal, gitops_refusal
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, skipped, this_run

SUMMARY = ('Backs up every *.istio.io object, namespace injection labels, injected pods per namespace, the istio-<revision> config maps '
           'and (archive only) every config map and secret of istio-system and asm-system; reads it back, verifies counts and sha256, '
           'and records it in the migration record. A resumed run reuses the recorded backup.')
STOPS = ("fleet features other than servicemesh bound to the membership (re-registration would drop them) unless listed in acceptMembershipFeatures, "
         "or the membership being a multi-cluster ingress config membership; "
         "Istio objects or injection-labelled namespaces a GitOps tool manages (pause sync first); ISTIOD with EnvoyFilter, WasmPlugin or IstioOperator objects (unless acceptTrafficDirector); a local backupUri on a CI runner; a gs:// bucket without uniform access, public access prevention and versioning; "
         "a backup that does not verify; a migration record that is not this run's; a cluster already changed by a run without a backup")
NEEDS_DECISION = True
NEEDS_BACKUP = False
CLUSTER_DATA = True  # its output names cluster objects: kept out of logs, stored as a secret
OPTIONS = ("stack", "backup_uri", "allow_local_backup", "accept_traffic_director", "reregister_membership",
           "accept_membership_features")


def commands(inp: StepInput) -> list[list[str]]:
    k = PLAN_KUBE
    uri = inp.options.backup_uri
    bucket = [gcloud.describe_bucket("gs://" + uri.removeprefix("gs://").split("/", 1)[0])] if uri.startswith("gs://") else []
    features = [gcloud.list_features(inp.ctx.fleet_project)] if inp.options.reregister_membership else []
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, *bucket, *features, k.get("customresourcedefinitions"),
            k.get("<istio-resource>", all_namespaces=True), k.get("namespaces"), k.get("pods", all_namespaces=True),
            k.get("configmaps", namespace="istio-system"), k.get("mutatingwebhookconfigurations"),
            k.get("configmaps,secrets", namespace="istio-system"), k.get("configmaps,secrets", namespace="asm-system"),
            *planned_writes(inp.new_backup_location()), RECORD_WRITE]


def durability_problem(inp: StepInput) -> str | None:
    """Why this run's backup location would not survive the runner, if it would not."""
    uri = inp.options.backup_uri
    if uri.startswith("gs://") or inp.options.allow_local_backup:
        return None
    if inp.process_env.get("CI") or inp.process_env.get("GITHUB_ACTIONS"):
        return (f"gke-mesh:migration.backupUri is the local folder {uri!r} on a CI runner, which is discarded after the job "
                "with the only backup: set backupUri to gs://<bucket>/<prefix> (or allowLocalBackup: true to accept the risk)")
    return None


def refuse_unsafe_location(inp: StepInput, runner) -> None:
    """A backup that would not outlive the runner, or a bucket that could leak or lose it."""
    problem = durability_problem(inp)
    if problem:
        raise StepFailed(f"cluster {inp.ctx.cluster}: {problem}")
    if inp.options.backup_uri.startswith("gs://"):
        check_bucket(inp.options.backup_uri, runner)



def refuse_an_implementation_switch(inp: StepInput, backup) -> None:
    """A re-provisioned membership can come back on TRAFFIC_DIRECTOR (new installations get
    it where possible: Cloud Service Mesh docs, supported features, managed), which ignores
    EnvoyFilter, WasmPlugin and IstioOperator: their behaviour would silently stop."""
    held = sorted(r for r in IGNORED_BY_TRAFFIC_DIRECTOR if backup.objects.get(r))
    if inp.decision.implementation == "ISTIOD" and held and not inp.options.accept_traffic_director:
        raise StepFailed(f"cluster {inp.ctx.cluster}: it runs ISTIOD and holds {', '.join(held)}, which TRAFFIC_DIRECTOR ignores; "
                         "re-provisioning may switch the implementation. Move them off those kinds, or set "
                         "gke-mesh:migration.acceptTrafficDirector: true to accept it (verify then fails on a switch)")


def refuse_bound_features(inp: StepInput, runner) -> None:
    """Re-registration would drop the fleet features bound to the membership: refuse unless
    each is acknowledged (or re-registration is off)."""
    if not inp.options.reregister_membership:
        return
    fleet_ids = tuple(x for x in (inp.ctx.fleet_project, inp.decision.fleet_project_number) if x)
    bound, config_of = features_bound_to(run_json(runner, gcloud.list_features(inp.ctx.fleet_project)),
                                         inp.decision.membership, inp.ctx.membership_location, fleet_ids)
    problem = features_refusal(bound, config_of, inp.options.accepted_features())
    if problem:
        raise StepFailed(f"cluster {inp.ctx.cluster}: {problem}")


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    if (result := skipped(inp)) is not None:
        return result
    decision, runner = inp.decision, tools.runner
    with cluster_access(inp.ctx, runner) as kube:
        current = this_run(runner, kube, inp)
        if current.backup is not None:
            backup = read_backup(current.backup, runner)
            tools.log(f"[{inp.ctx.cluster}] backup: reusing this run's verified backup at {current.backup.location} "
                      f"({backup.object_count} objects)")
            return {"cluster": inp.ctx.cluster, "backup": current.backup.to_dict(), "objects": backup.object_count, "reused": True}
        if current.touched:
            raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record says the cluster was changed ({current.describe()}) "
                             "but names no backup; a new snapshot now could miss what was removed: restore by hand "
                             "(README \"When a migration fails\")")
        refuse_unsafe_location(inp, runner)
        refuse_bound_features(inp, runner)
        location = inp.new_backup_location()
        store = BackupStore(location, runner)
        backup = collect(runner, kube, inp.ctx.cluster, decision.from_channel, decision.to_channel, decision.run_id,
                         decision.from_revision)
        refuse_an_implementation_switch(inp, backup)
        gitops = gitops_refusal([o for objs in backup.objects.values() for o in objs], items(runner, kube.get("namespaces")))
        if gitops:
            raise StepFailed(f"cluster {inp.ctx.cluster}: {gitops}")
        ref = store.write(backup)
        current = record.advance(runner, kube, current, "backed-up", backup=ref)
        store.write_record(current)
    counts = {resource: len(objs) for resource, objs in sorted(backup.objects.items()) if objs}
    tools.log(f"[{inp.ctx.cluster}] backup: {backup.object_count} objects in {len(backup.objects)} kinds verified at {location}")
    return {"cluster": inp.ctx.cluster, "backup": ref.to_dict(), "objects": backup.object_count, "counts": counts,
            "namespaces": sorted(backup.namespaces), "archived": len(backup.archive), "reused": False}
