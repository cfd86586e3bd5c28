"""Fleet state code -> likely cause -> the command that fixes it.

Sources: Cloud Service Mesh troubleshooting, "Resolve feature state conditions" and
"Troubleshoot managed Cloud Service Mesh" (a first run that stalls with REVISION_STALLED when
connectgateway.googleapis.com is off is a known case), and the condition codes of gcloud
528's generated gkehub v1 client (gkehub_v1_messages.py, MembershipState Condition Code).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshops.cluster.fleet_state import MeshState
from meshops.context import StepContext

FAILED_STATES = ("STALLED", "FAILED_PRECONDITION", "NEEDS_ATTENTION", "DEGRADED")


@dataclass(frozen=True)
class Diagnosis:
    code: str
    cause: str
    fix: str

    def line(self) -> str:
        return f"{self.code}: {self.cause}; fix: {self.fix}"


def _reapply(ctx: StepContext, membership: str) -> str:
    return (f"gcloud container fleet mesh update --management automatic --memberships {membership} "
            f"--project {ctx.fleet_project} --location {ctx.membership_location}")


def service_agent_grants(ctx: StepContext, fleet_number: str = "") -> list[str]:
    """The roles the fleet's service agents need, as the exact commands that grant them.

    The mesh service agent of the fleet host project needs roles/anthosservicemesh.serviceAgent
    (Cloud Service Mesh, "Provision a managed control plane") on the fleet host project and,
    for a cluster in another project, on that project too (the cluster project is documented
    by Google; the fleet project was found missing from the docs in
    googlecloudplatform/anthos-service-mesh-packages issue 1417). A cluster in another project
    also needs the fleet host's GKE Hub service agent granted both roles/gkehub.serviceAgent
    and roles/gkehub.crossProjectServiceAgent on the cluster project, as Terraform's GKE
    module does for a membership in another project (terraform-google-kubernetes-engine,
    modules/fleet-membership). Without the fleet project's number the member is written with
    PROJECT_NUMBER to fill in.
    """
    number = fleet_number or "PROJECT_NUMBER"
    mesh_agent = f"serviceAccount:service-{number}@gcp-sa-servicemesh.iam.gserviceaccount.com"
    hub_agent = f"serviceAccount:service-{number}@gcp-sa-gkehub.iam.gserviceaccount.com"
    grants = [f"gcloud projects add-iam-policy-binding {ctx.fleet_project} --member={mesh_agent} --role=roles/anthosservicemesh.serviceAgent"]
    if ctx.project != ctx.fleet_project:
        grants += [f"gcloud projects add-iam-policy-binding {ctx.project} --member={mesh_agent} --role=roles/anthosservicemesh.serviceAgent",
                   f"gcloud projects add-iam-policy-binding {ctx.project} --member={hub_agent} --role=roles/gkehub.serviceAgent",
                   f"gcloud projects add-iam-policy-binding {ctx.project} --member={hub_agent} --role=roles/gkehub.crossProjectServiceAgent"]
    return grants


def _prefixed(codes: list[str], prefix: str) -> str | None:
    return next((c for c in codes if c.startswith(prefix)), None)


def diagnose(state: MeshState, ctx: StepContext, membership: str, enabled_apis: set[str] | None,
             fleet_number: str = "") -> Diagnosis | None:
    """The failure the state shows, or None while it is healthy or still progressing.

    `enabled_apis` (from `gcloud services list --enabled`) sharpens REVISION_STALLED;
    None when it could not be read. `fleet_number`: the fleet host project's number
    (preflight resolves it), so the IAM fix names the real service agents.
    """
    codes = state.codes()
    fp = ctx.fleet_project
    agent_role = " && ".join(service_agent_grants(ctx, fleet_number))
    modernization = state.modernization_in_progress()
    if modernization:
        return Diagnosis(modernization, "a control plane modernization is in progress and must finish first", "wait for it to complete")
    if "REVISION_STALLED" in codes:
        for api in ("connectgateway.googleapis.com", "mesh.googleapis.com"):
            if enabled_apis is not None and api not in enabled_apis:
                return Diagnosis("REVISION_STALLED", f"the {api} API is off in {fp}",
                                 f"gcloud services enable {api} --project {fp} && {_reapply(ctx, membership)}")
        return Diagnosis("REVISION_STALLED", "provisioning stalled: required APIs are on, so check the mesh service agent role and Workload Identity",
                         f"{agent_role} && {_reapply(ctx, membership)}")
    if "MESH_IAM_PERMISSION_DENIED" in codes:
        return Diagnosis("MESH_IAM_PERMISSION_DENIED", "the mesh service agent lacks its role", agent_role)
    if "MESH_IAM_CROSS_PROJECT_PERMISSION_DENIED" in codes:
        return Diagnosis("MESH_IAM_CROSS_PROJECT_PERMISSION_DENIED",
                         f"the fleet host project's service agents lack their roles on the cluster project {ctx.project}", agent_role)
    for code in ("NODEPOOL_WORKLOAD_IDENTITY_FEDERATION_REQUIRED", "WORKLOAD_IDENTITY_REQUIRED"):
        if code in codes:
            return Diagnosis(code, "Workload Identity is off on the cluster or a node pool",
                             f"gcloud container clusters update {ctx.cluster} --project {ctx.project} --location {ctx.location} "
                             f"--workload-pool={ctx.project}.svc.id.goog (and --workload-metadata=GKE_METADATA on each node pool)")
    if "REVISION_FAILED_PRECONDITION" in codes:
        return Diagnosis("REVISION_FAILED_PRECONDITION", "mdp-controller cannot be scheduled (no node without taints with 50m CPU / 128Mi free)",
                         f"kubectl -n kube-system describe pods -l app=mdp-controller on {ctx.cluster}, then free or add a node")
    if "UNSUPPORTED_MULTIPLE_CONTROL_PLANES" in codes:
        return Diagnosis("UNSUPPORTED_MULTIPLE_CONTROL_PLANES", "two control plane revisions are present (leftovers of the old channel)",
                         "delete the old ControlPlaneRevision in istio-system")
    if "CLUSTER_HAS_ZERO_NODES" in codes:
        return Diagnosis("CLUSTER_HAS_ZERO_NODES", "the cluster has no nodes", "add a node pool or scale one up")
    for prefix, cause, fix in (("QUOTA_EXCEEDED_", "a project quota is exhausted", f"request more quota in {ctx.project}"),
                               ("CNI_", "the managed CNI failed", "see Cloud Service Mesh's managed CNI troubleshooting")):
        code = _prefixed(codes, prefix)
        if code:
            return Diagnosis(code, cause, fix)
    if state.control_plane_state in FAILED_STATES:
        first = state.control_plane_details[0].code if state.control_plane_details else state.control_plane_state
        return Diagnosis(first, f"control plane is {state.control_plane_state}: {state.summary()}", _reapply(ctx, membership))
    return None
