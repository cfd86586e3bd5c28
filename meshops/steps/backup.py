"""Back up every Istio custom resource, the injection labels, which namespaces run
injected pods and the mesh config maps; read the backup back and verify it; record it.

One migration, one backup: when the migration record already names a backup (a resumed
run), that backup is verified and reused, never replaced by a snapshot of a cluster that
may by now be partly dismantled. Before a new backup (and when preflight decided to skip),
this stack's backup folder of the cluster is searched for a run that never finished: its
record was deleted by hand. That run's record is re-created from its signed copy and the
step stops, saying how to resume it: a new snapshot, or a skip, could lose what it took.
"""

from __future__ import annotations

from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import RECORD, BackupStore, check_bucket, planned_writes, read_backup
from meshops.cluster.inventory import collect, crds
from meshops.cluster.restorable import NotRestorable, check_configmaps, check_istio_objects
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.objects import IGNORED_BY_TRAFFIC_DIRECTOR, archive_only, istio_kinds
from meshops.cluster.preconditions import (
    ARGO_APPLICATIONS, argo_application_ids, features_bound_to, features_refusal, gitops_refusal
)
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.cluster.record import Ledger, signed_document
from meshops.cluster.runs import runs_in
from meshops.context import StepInput
from meshops.steps.common import RECORD_READ, RECORD_WRITE, finished, ledger_of, owner_of, recover, signed_copy, skipped, this_run

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
    features = ([gcloud.list_features(inp.ctx.fleet_project), gcloud.list_membership_bindings(inp.ctx, inp.ctx.membership)]
                if inp.options.reregister_membership else [])
    unfinished = [gcloud.list_objects(f"{inp.backup_folder()}/**")] if uri.startswith("gs://") else []
    return [gcloud.describe_cluster(inp.ctx), RECORD_READ, *unfinished, *bucket, *features, k.get("customresourcedefinitions"),
            k.get("<istio-resource>", all_namespaces=True), k.get("namespaces"), k.get("pods", all_namespaces=True),
            k.get("configmaps", namespace="istio-system"), k.get("mutatingwebhookconfigurations"),
            k.api_resources(), k.get("<namespaced-kinds>", namespace="istio-system"), k.get("<namespaced-kinds>", namespace="asm-system"),
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


def argo_applications(runner, kube) -> set[str]:
    """The ids Argo CD 2.x label tracking uses, from the cluster's Applications (none without Argo CD)."""
    if ARGO_APPLICATIONS not in {c["metadata"]["name"] for c in crds(runner, kube)}:
        return set()
    return argo_application_ids(items(runner, kube.get(ARGO_APPLICATIONS, all_namespaces=True)))


def refuse_unrestorable(inp: StepInput, runner, kube, backup) -> None:
    """What restore would refuse to apply, found now, before anything changes, instead of after
    the purge, when the only way back would be a restore that refuses."""
    kinds = {k.resource: k for k in istio_kinds(crds(runner, kube))}
    try:
        check_istio_objects(backup.objects, kinds, inp.new_backup_location())
        check_configmaps(backup.configmaps, inp.new_backup_location())
    except NotRestorable as problem:
        raise StepFailed(f"cluster {inp.ctx.cluster}: it holds {problem.what}, which restore would refuse to put back; nothing "
                         "was changed: fix or remove it before migrating") from None


REMOTE_SECRET_LABEL = "istio/multiCluster"


def refuse_legacy_remote_secrets(inp: StepInput, backup) -> None:
    """Istio remote secrets (labelled istio/multiCluster=true) are how an in-cluster control
    plane discovers other clusters; managed Cloud Service Mesh replaces them with
    `multicluster_mode` in istio-system/asm-options and reports them as LEGACY_MC_SECRETS.
    The purge deletes istio-system, and the new control plane would not read them back: stop
    before anything changes."""
    found = [o["metadata"].get("name", "?") for o in backup.archive
             if o.get("kind") == "Secret" and str(((o.get("metadata") or {}).get("labels") or {}).get(REMOTE_SECRET_LABEL)) == "true"]
    if found:
        raise StepFailed(f"cluster {inp.ctx.cluster}: {len(found)} legacy Istio remote secrets in istio-system "
                         f"({REMOTE_SECRET_LABEL}=true); managed Cloud Service Mesh uses multicluster_mode in "
                         "istio-system/asm-options instead: switch to it and remove them before migrating")


def warn_archive_only(inp: StepInput, tools: Tools, backup) -> None:
    """Objects of Istio kinds no current control plane serves are kept, not restored: say so
    before anything changes, so nobody expects them back."""
    held = {r: len(objs) for r, objs in sorted(backup.objects.items()) if objs and archive_only(r)}
    if held:
        tools.log(f"[{inp.ctx.cluster}] backup: warning: {sum(held.values())} objects of {', '.join(held)} (Istio APIs removed "
                  "from current releases, or operator state) are kept in the backup as archive only and will not be restored")


def refuse_bound_features(inp: StepInput, runner, membership_exists: bool = True) -> None:
    """Re-registration would drop the fleet features bound to the membership (refused unless
    each is acknowledged), and cannot delete a membership that has sub-resources: gcloud 528's
    `memberships delete`/`unregister` send no `force`, and the API refuses a membership with
    scope bindings, which would stop the chain after the teardown. Checked at backup time and
    again right before the membership goes (or re-registration is off); a membership that is
    gone already has no bindings to list."""
    if not inp.options.reregister_membership:
        return
    fleet_ids = tuple(x for x in (inp.ctx.fleet_project, inp.decision.fleet_project_number) if x)
    bound, config_of = features_bound_to(run_json(runner, gcloud.list_features(inp.ctx.fleet_project)),
                                         inp.decision.membership, inp.ctx.membership_location, fleet_ids)
    problem = features_refusal(bound, config_of, inp.options.accepted_features())
    if problem:
        raise StepFailed(f"cluster {inp.ctx.cluster}: {problem}")
    if not membership_exists:
        return
    bindings = scope_bindings(run_json(runner, gcloud.list_membership_bindings(inp.ctx, inp.decision.membership)))
    if bindings:
        raise StepFailed(f"cluster {inp.ctx.cluster}: its membership {inp.decision.membership} has {len(bindings)} fleet scope "
                         f"binding(s) ({', '.join(bindings[:3])}), and the fleet API does not delete a membership with "
                         "sub-resources; re-registration would stop after the teardown. Delete them (gcloud container fleet "
                         "memberships bindings delete) and re-create them after the move, or set "
                         "gke-mesh:migration.reregisterMembership: false")


def scope_bindings(listed: Any) -> list[str]:
    """Short names of a `memberships bindings list` answer (gkehub v1 MembershipBinding.name)."""
    if listed in (None, ""):
        return []
    if not isinstance(listed, list):
        raise StepFailed("gcloud container fleet memberships bindings list returned no list")
    return sorted(str(b.get("name", "?")).rsplit("/", 1)[-1] for b in listed if isinstance(b, dict))


def refuse_unfinished_run(inp: StepInput, ledger: Ledger, tools: Tools) -> None:
    """Before a new snapshot or a skip, this stack's runs of this cluster beside their backups:
    - this run itself wrote a backup already, though its record names none: an older version of
      the record was put back (a snapshot now could be of a purged cluster);
    - an earlier run never finished and its record is gone: its record is re-created from the
      signed copy (replacing this run's untouched one) and the step stops.
    A run with a finished marker is over; the newest such run makes older ones superseded."""
    runs = runs_in(inp.backup_folder(), tools.runner)
    own_run = inp.decision.run_id if inp.decision.migrate else None
    if own_run in runs and RECORD in runs[own_run].files:
        raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record of run {own_run} names no backup, but the run wrote one "
                         f"at {runs[own_run].folder}: an older version of the record was put back. Nothing was changed; find out "
                         f"who wrote {ledger.where}, delete it and set gke-mesh:migration.rerun to a new value (the run is then "
                         "re-created from its signed copy)")
    for run in sorted(runs.values(), key=lambda r: r.run_id, reverse=True):
        if run.run_id == own_run:
            continue
        if finished(ledger, run) is not None:
            return
        copy = signed_copy(ledger, run.folder)
        if copy is None:
            continue
        if copy.phase == "verified":
            return
        if ledger.present():
            ledger.clear()  # this run's own record, written by preflight: nothing was done under it
        recover(ledger, copy)
        raise StepFailed(f"cluster {inp.ctx.cluster}: run {copy.run_id} of this stack ({copy.from_channel} -> {copy.to_channel}) "
                         f"never finished and its migration record was deleted; it was re-created from its signed copy at "
                         f"{run.folder}. Nothing was changed: set gke-mesh:migration.rerun to a new value and run `pulumi up` "
                         "to finish that run from its backup")


def run(inp: StepInput, tools: Tools) -> dict[str, Any]:
    decision, runner = inp.decision, tools.runner
    with cluster_access(inp.ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        if not decision.migrate:
            if ledger.read() is None:
                refuse_unfinished_run(inp, ledger, tools)
            return skipped(inp)
        current = this_run(ledger, inp)
        if current.backup is not None:
            backup = read_backup(current.backup, runner, owner_of(inp), current.run_id)
            tools.log(f"[{inp.ctx.cluster}] backup: reusing this run's verified backup at {current.backup.location} "
                      f"({backup.object_count} objects)")
            return {"cluster": inp.ctx.cluster, "backup": current.backup.to_dict(), "objects": backup.object_count, "reused": True}
        if current.touched:
            raise StepFailed(f"cluster {inp.ctx.cluster}: the migration record says the cluster was changed ({current.describe()}) "
                             "but names no backup; a new snapshot now could miss what was removed: restore by hand "
                             "(README \"When a migration fails\")")
        refuse_unsafe_location(inp, runner)
        refuse_unfinished_run(inp, ledger, tools)
        refuse_bound_features(inp, runner)
        location = inp.new_backup_location()
        store = BackupStore(location, runner)
        backup = collect(runner, kube, inp.ctx, decision.from_channel, decision.to_channel, decision.run_id,
                         decision.from_revision, inp.options.stack)
        refuse_an_implementation_switch(inp, backup)
        refuse_unrestorable(inp, runner, kube, backup)
        refuse_legacy_remote_secrets(inp, backup)
        warn_archive_only(inp, tools, backup)
        gitops = gitops_refusal([o for objs in backup.objects.values() for o in objs], items(runner, kube.get("namespaces")),
                                argo_applications(runner, kube))
        if gitops:
            raise StepFailed(f"cluster {inp.ctx.cluster}: {gitops}")
        ref = store.write(backup)
        current = ledger.advance(current, "backed-up", backup=ref)
        store.write_record(signed_document(ledger.key, inp.ctx, current))
    tools.log(f"[{inp.ctx.cluster}] backup: {backup.object_count} objects in {len(backup.objects)} kinds verified at {location}")
    return {"cluster": inp.ctx.cluster, "backup": ref.to_dict(), "objects": backup.object_count,
            "namespaces": len(backup.namespaces), "archived": len(backup.archive), "reused": False}
