"""Read the live state and decide: migrate or skip. Prints one JSON decision.

Later steps receive this decision from Pulumi state, so a re-run after a failure sees
the same one.
"""

from __future__ import annotations

import time
from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.diagnose import service_agent_grants
from meshops.cluster.fleet_state import fleet_default_management, membership_listed, mesh_state, registers
from meshops.cluster.inventory import user_workloads, workloads_refusal
from meshops.cluster.kube import PLAN_KUBE, cluster_access, items
from meshops.cluster.objects import AUTHORIZATION_POLICY, identity_bound_allow
from meshops.cluster.preconditions import channel_refusal, identity_refusal, kind_refusal, operation_refusal
from meshops.cluster.process import StepFailed, Tools, run_json
from meshops.cluster.record import MigrationRecord
from meshops.context import UNSUPPORTED, Decision, StepContext, StepInput, channel_of_revision, revision_of
from meshops.steps.common import OWNER_READ, RECORD_READ, finish, ledger_of, rolled_back
from meshops.steps.release_channel import current_channel

SUMMARY = ("Checks the membership registers this cluster, reads the cluster channel, the fleet state, the ControlPlaneRevisions "
           "and the migration record, checks every precondition, then decides: skip, start (writing the record) or resume the recorded run. For a cluster outside the fleet host project "
           "it prints the service-agent grants provisioning needs, with the resolved project numbers.")
STOPS = ("an Autopilot cluster; Workload Identity off on the cluster or a node pool; a control plane or node version the "
         "target channel does not offer; a running GKE operation; a membership that registers another cluster; a modernization in progress (MODERNIZATION_IN_PROGRESS); another stack owning the cluster or its migration record; "
         "workloads of yours in istio-system or asm-system")
CLUSTER_DATA = False
NEEDS_DECISION = False
NEEDS_BACKUP = False
OPTIONS = ("stack",)
"""Only the stack: an option edit must not reach preflight, whose result (its run id) is in
every later step's triggers. The backup location's checks are the backup step's, which
still comes before anything is changed."""
CPR = "controlplanerevisions.mesh.cloud.google.com"


def commands(inp: StepInput) -> list[list[str]]:
    ctx = inp.ctx
    fleet_number = [] if ctx.project == ctx.fleet_project else [gcloud.describe_project(ctx.fleet_project)]
    return [gcloud.describe_cluster(ctx), gcloud.describe_project(ctx.project), *fleet_number, gcloud.list_memberships(ctx), gcloud.describe_mesh(ctx.fleet_project), OWNER_READ, RECORD_READ,
            PLAN_KUBE.get("customresourcedefinitions"), PLAN_KUBE.get(CPR, namespace="istio-system"),
            gcloud.server_config(ctx), gcloud.running_operations(ctx),
            PLAN_KUBE.api_resources(), *(PLAN_KUBE.get("<namespaced-kinds>", namespace=n) for n in ("istio-system", "asm-system")),
            PLAN_KUBE.get(AUTHORIZATION_POLICY, all_namespaces=True), PLAN_KUBE.create()]


def project_number(project: str, runner) -> str:
    described = run_json(runner, gcloud.describe_project(project))
    number = str((described or {}).get("projectNumber", "")) if isinstance(described, dict) else ""
    if not number.isdigit():
        raise StepFailed(f"gcloud projects describe {project} returned no project number; "
                         "the deploying identity needs resourcemanager.projects.get on it (e.g. roles/browser)")
    return number


def report_cross_project_grants(ctx: StepContext, fleet_number: str, tools: Tools) -> None:
    """A cluster outside the fleet host project provisions only when the fleet's service
    agents hold roles on the cluster project. Reading IAM policies would need
    getIamPolicy, which the deploying identity should not need, so the exact grants are
    printed before anything changes (and repeated by wait-ready's diagnosis if it stalls)."""
    tools.log(f"[{ctx.cluster}] preflight: cluster project {ctx.project} is not the fleet host project {ctx.fleet_project} "
              f"(number {fleet_number}); provisioning needs these grants (check them once):")
    for grant in service_agent_grants(ctx, fleet_number):
        tools.log(f"[{ctx.cluster}]   {grant}")


def membership_of(ctx: StepContext, memberships: Any, number: str, existing: MigrationRecord | None) -> str:
    """The cluster's membership; when this stack's own migration deleted it (the record says
    so, no membership registers the cluster meanwhile: found on the real engine, a revert
    after a refused registration), the recorded name: reregister-membership registers it again."""
    try:
        return resolve_membership(ctx, memberships, number)
    except StepFailed:
        registered_elsewhere = any(registers(str(((m.get("endpoint") or {}).get("gkeCluster") or {}).get("resourceLink", "")),
                                             ctx.project, ctx.location, ctx.cluster, number) for m in memberships or [])
        if existing and existing.membership_deleted and not registered_elsewhere \
                and not membership_listed(memberships, existing.membership, ctx.membership_location):
            return existing.membership
        raise


def resolve_membership(ctx: StepContext, memberships: Any, number: str) -> str:
    """The configured membership, checked: it must exist and register this cluster, in
    this very project (id or its exact number)."""

    def _registers(link: str, ctx: StepContext) -> bool:
        return registers(link, ctx.project, ctx.location, ctx.cluster, number)

    if not isinstance(memberships, list):
        raise StepFailed("gcloud container fleet memberships list returned no list")
    pointing, configured = [], None
    for m in memberships:
        name = str(m.get("name", ""))
        short, location = name.rsplit("/", 1)[-1], (name.split("/locations/", 1)[-1].split("/", 1)[0] if "/locations/" in name else "")
        link = str(((m.get("endpoint") or {}).get("gkeCluster") or {}).get("resourceLink", ""))
        if _registers(link, ctx):
            pointing.append(f"{short} ({location})")
        if short == ctx.membership and location == ctx.membership_location:
            configured = link
    if configured is not None and _registers(configured, ctx):
        return ctx.membership
    if pointing:
        raise StepFailed(f"cluster {ctx.cluster}: configured membership {ctx.membership} ({ctx.membership_location}) "
                         f"{'registers another cluster' if configured is not None else 'does not exist'}; the membership of this cluster is "
                         f"{', '.join(pointing)}: set membership/membershipLocation in its gke-mesh:clusters entry")
    raise StepFailed(f"cluster {ctx.cluster}: no membership in fleet project {ctx.fleet_project} registers it; "
                     f"register it first: gcloud container fleet memberships register {ctx.membership} "
                     f"--gke-uri={gcloud.cluster_uri(ctx)} --enable-workload-identity --project {ctx.fleet_project} "
                     f"--location {ctx.membership_location}")


def refuse_blocking_conditions(ctx: StepContext, state) -> None:
    """A condition that would stop the new control plane's provisioning, found before the old
    one is taken down (issue "Google's rules, round two", item 8)."""
    blocking = state.blocking_provisioning()
    if blocking:
        shown = "; ".join(f"{c.code} ({c.details[:80]})" if c.details else c.code for c in blocking)
        raise StepFailed(f"cluster {ctx.cluster}: its membership reports {shown}: re-provisioning would stop on it after the "
                         "teardown; fix it first (Cloud Service Mesh troubleshooting, \"Resolve feature state conditions\"), "
                         "then run `pulumi up` again")


def refuse_unsettled_mesh(ctx: StepContext, state) -> None:
    """A new migration starts only from a settled mesh. MANUAL management with no record is
    what a migration stopped half-way leaves when its record was removed by hand: a new
    backup now could miss everything the purge already took."""
    if state.management == "MANAGEMENT_MANUAL":
        raise StepFailed(f"cluster {ctx.cluster}: mesh management is MANUAL and there is no migration record; a migration "
                         "may have stopped half-way and its record been removed: check `python -m meshops status` and "
                         "restore by hand (README \"When a migration fails\") before a new one starts")
    if state.management == "MANAGEMENT_AUTOMATIC" and state.control_plane_state not in ("ACTIVE",):
        raise StepFailed(f"cluster {ctx.cluster}: control plane is {state.control_plane_state}; a migration starts only "
                         "from an ACTIVE mesh: wait for it, or fix what `gcloud container fleet mesh describe` reports")


def _nonce(tools: Tools) -> str:
    return f"{int(tools.random() * 16 ** 8):08x}"


def refuse_unmovable(ctx: StepContext, runner, described: dict, target: str) -> None:
    """The cluster's identity and versions, and GKE's running operations: everything that
    would stop the channel change or the re-provisioning after the teardown."""
    for problem in (identity_refusal(described),
                    channel_refusal(described, run_json(runner, gcloud.server_config(ctx)), target),
                    operation_refusal(run_json(runner, gcloud.running_operations(ctx)), ctx.cluster)):
        if problem:
            raise StepFailed(f"cluster {ctx.cluster}: {problem}")


def warn_identity_policies(ctx: StepContext, tools: Tools, policies: list[dict]) -> None:
    """ALLOW policies that match only mTLS identities deny every call from a workload whose
    sidecar is gone, from uninject until reinject. Counted, not named: preflight's log is plain."""
    bound = [p for p in policies if identity_bound_allow(p)]
    if bound:
        namespaces = {p["metadata"].get("namespace") for p in bound}
        tools.log(f"[{ctx.cluster}] preflight: warning: {len(bound)} AuthorizationPolicies in {len(namespaces)} namespaces allow only "
                  "callers with an mTLS identity (principals/namespaces): from uninject until reinject they deny calls from "
                  "workloads without a sidecar. Set gke-mesh:migration.removeAuthorizationPolicies: true to lift every policy for "
                  "the move (restored from the backup), or accept the denials; list them with "
                  "`kubectl get authorizationpolicies.security.istio.io -A`")


def refuse_user_workloads(inp: StepInput, runner, kube) -> None:
    workloads = user_workloads(runner, kube)
    if workloads:
        raise StepFailed(workloads_refusal(inp.ctx.cluster, workloads))


def existing_record(ledger, ctx: StepContext) -> MigrationRecord | None:
    """This stack's record of the cluster, if any (another stack's, or one nobody signed, is a
    refusal). A verified one is finished: verify's clearing of it failed after it wrote it
    (a lost answer, say); it is cleared now. One whose signed copy beside its backup says the
    run was verified is an old record put back by someone who kept a copy: acting on it would
    restore an older backup."""
    existing = ledger.read()
    if existing is not None and existing.phase == "verified":
        ledger.clear()
        return None
    problem = rolled_back(ledger, existing) if existing is not None else None
    if problem:
        raise StepFailed(f"cluster {ctx.cluster}: the migration record of run {existing.run_id} (phase {existing.phase}) is an "
                         f"older version put back in kube-system: {problem}. Nothing was changed; find out who wrote it, "
                         f"then delete {ledger.where}")
    return existing


def run(inp: StepInput, tools: Tools) -> Decision:
    """Every read and refusal first; the claim and the record are written only once this
    cluster is accepted (an Autopilot cluster or one of another stack is refused before
    anything is written)."""
    ctx, runner, stack = inp.ctx, tools.runner, inp.options.stack
    described = run_json(runner, gcloud.describe_cluster(ctx))
    problem = kind_refusal(described)
    if problem:
        raise StepFailed(f"cluster {ctx.cluster}: {problem}")
    cluster_channel = current_channel(described)
    number = project_number(ctx.project, runner)
    fleet_number = number if ctx.project == ctx.fleet_project else project_number(ctx.fleet_project, runner)
    memberships = run_json(runner, gcloud.list_memberships(ctx))
    with cluster_access(ctx, runner) as kube:
        ledger = ledger_of(inp, runner, kube)
        held = ledger.owner()
        if held is not None and not ledger.is_ours(held, inp.legacy_guard):
            raise StepFailed(record.owned_elsewhere(ctx.cluster, held, stack))
        existing = existing_record(ledger, ctx)
        membership = membership_of(ctx, memberships, number, existing)
        described_mesh = run_json(runner, gcloud.describe_mesh(ctx.fleet_project))
        state = mesh_state(described_mesh, ctx.membership_location, membership)
        modernization = state.modernization_in_progress()
        if modernization:
            raise StepFailed(f"cluster {ctx.cluster}: {modernization}: a control plane modernization is in progress; "
                             "never de-provision during one: wait for it to finish")
        crd_names = {c["metadata"]["name"] for c in items(runner, kube.get("customresourcedefinitions"))}
        revisions = items(runner, kube.get(CPR, namespace="istio-system")) if CPR in crd_names else []
        managed = sorted(r["metadata"]["name"] for r in revisions if channel_of_revision(r["metadata"]["name"]))
        from_revision = state.ready_revision() or (managed[0] if managed else "none")
        mesh_channel = channel_of_revision(from_revision) or "none"
        target = ctx.channel
        aligned = cluster_channel == target and mesh_channel == target and state.control_plane_state == "ACTIVE" and len(managed) <= 1
        # Unique whatever the clock says: a run id names a backup folder, and two runs must never share one.
        run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(tools.wall()))}-{_nonce(tools)}"
        common = dict(to_channel=target, to_revision=revision_of(target), implementation=state.implementation,
                      control_plane_state=state.control_plane_state, stack=stack, project_number=number,
                      fleet_project_number=fleet_number,
                      attempt=_nonce(tools))
        if existing and not (aligned and not existing.touched):
            refuse_user_workloads(inp, runner, kube)
            if cluster_channel != target:  # the channel change is still to come: GKE must accept it
                refuse_unmovable(ctx, runner, described, target)
            ledger.claim(inp.guard_id, inp.legacy_guard)
            resumed = ledger.advance(existing, existing.phase, to_channel=target)
            decision = Decision(action="migrate", reason=f"resuming {existing.describe()}; target now {target}",
                                from_channel=existing.from_channel, from_revision=existing.from_revision,
                                membership=existing.membership, run_id=existing.run_id, resumed=True,
                                backup=resumed.backup.to_dict() if resumed.backup else None, **common)
        elif aligned:
            ledger.claim(inp.guard_id, inp.legacy_guard)
            if existing:  # an earlier run stopped before changing anything: over, beside its backup too
                finish(ledger, existing, "dropped")
                ledger.clear()
            decision = Decision(action="skip", reason=f"cluster and mesh already on {target}, control plane ACTIVE",
                                from_channel=mesh_channel, from_revision=from_revision, membership=membership, run_id=run_id, **common)
        else:
            refuse_unsettled_mesh(ctx, state)
            refuse_blocking_conditions(ctx, state)
            refuse_unmovable(ctx, runner, described, target)
            refuse_user_workloads(inp, runner, kube)
            if AUTHORIZATION_POLICY in crd_names:
                warn_identity_policies(ctx, tools, items(runner, kube.get(AUTHORIZATION_POLICY, all_namespaces=True)))
            decision = Decision(action="migrate",
                                reason=(f"cluster channel {cluster_channel}, mesh revision {from_revision} ({mesh_channel}), "
                                        f"control plane {state.control_plane_state}; target {target}"),
                                from_channel=mesh_channel if mesh_channel != "none" else cluster_channel,
                                from_revision=from_revision, membership=membership, run_id=run_id, **common)
            ledger.claim(inp.guard_id, inp.legacy_guard)
            ledger.create(MigrationRecord(stack=stack, run_id=run_id, cluster=ctx.cluster, project=ctx.project,
                                          location=ctx.location, from_channel=decision.from_channel, to_channel=target,
                                          from_revision=from_revision, membership=membership))
    if decision.migrate:
        tools.log(f"[{ctx.cluster}] preflight: note: {UNSUPPORTED}")
        if fleet_default_management(described_mesh) == "MANAGEMENT_AUTOMATIC":
            tools.log(f"[{ctx.cluster}] preflight: note: the fleet's default member config sets mesh management automatic, so "
                      "the re-registered membership starts provisioning as soon as it joins (on the channel the cluster then "
                      "has: re-registration comes after the channel change); enable-management then confirms it")
    if decision.migrate and ctx.project != ctx.fleet_project:
        report_cross_project_grants(ctx, fleet_number, tools)
    tools.log(f"[{ctx.cluster}] preflight: {decision.action}: {decision.reason}")
    return decision
