"""What must hold before a migration changes anything, read from the cluster's own
description, the location's server config and its running operations. Pure functions
over gcloud's JSON: each returns why the migration must not start, or None.

Sources (issue "Correct on a real fleet"; the public pages and reports named in each item):
- GKE refuses a channel whose versions do not include the cluster's version
  (`Master version must be one of "STABLE" channel supported versions`, public issue
  reports) and refuses updates while another operation runs;
  `gcloud container get-server-config` lists each channel's valid versions
  (container v1 ServerConfig.channels[].validVersions).
- Autopilot denies writes to managed namespaces such as kube-system (GKE Warden,
  "managed-namespaces-limitation"): the purge would fail half-way.
- Managed Cloud Service Mesh needs Workload Identity on the cluster (workloadPool) and
  GKE_METADATA on every node pool (provisioning reports WORKLOAD_IDENTITY_REQUIRED /
  NODEPOOL_WORKLOAD_IDENTITY_FEDERATION_REQUIRED only after the teardown otherwise).
Node pools' versions are not checked against the target channel: no Google page requires
every node pool to run one of the channel's versions (a pool a patch behind its control plane
is normal, and GKE upgrades it within the Kubernetes version-skew policy); only what GKE
refuses is refused (issue "Google's rules, round two", item 12).
"""

from __future__ import annotations

from typing import Any


def channel_refusal(described: dict, server_config: Any, target: str) -> str | None:
    """Why GKE would refuse moving this cluster to `target`, judged before the teardown."""
    channels = {str(c.get("channel", "")).lower(): c for c in (server_config or {}).get("channels") or [] if isinstance(c, dict)}
    offered = channels.get(target)
    if offered is None:
        return f"the location offers no {target} channel (get-server-config lists {', '.join(sorted(channels)) or 'none'})"
    valid = set(offered.get("validVersions") or [])
    master = str(described.get("currentMasterVersion", ""))
    if master not in valid:
        return (f"its control plane version {master or '?'} is not one of the {target} channel's versions "
                f"(GKE would refuse the channel change after the teardown); upgrade or downgrade to a {target} version first "
                f"(e.g. {offered.get('defaultVersion', 'its default')})")
    return None


def operation_refusal(operations: Any, cluster: str) -> str | None:
    """A running operation on this cluster (an upgrade, a node-pool change) blocks updates."""
    running = [o for o in operations or [] if isinstance(o, dict) and o.get("status") == "RUNNING"
               and str(o.get("targetLink", "")).split("/clusters/", 1)[-1].split("/", 1)[0] == cluster]
    if running:
        kinds = ", ".join(sorted({str(o.get("operationType", "operation")) for o in running}))
        return f"{len(running)} operation(s) running on it ({kinds}); GKE refuses a channel change meanwhile: wait for them"
    return None


def kind_refusal(described: dict) -> str | None:
    if (described.get("autopilot") or {}).get("enabled") is True:
        return ("it is an Autopilot cluster: writes to kube-system are denied, so the purge (mdp-controller, the CNI) would "
                "fail half-way; gke-mesh does not migrate Autopilot clusters")
    return None


def identity_refusal(described: dict) -> str | None:
    if not (described.get("workloadIdentityConfig") or {}).get("workloadPool"):
        return ("Workload Identity is off (no workload pool); the new control plane would not provision: "
                "gcloud container clusters update CLUSTER --workload-pool=PROJECT.svc.id.goog first")
    pools = sorted(str(p.get("name", "?")) for p in described.get("nodePools") or []
                   if ((p.get("config") or {}).get("workloadMetadataConfig") or {}).get("mode") != "GKE_METADATA")
    if pools:
        return (f"node pools {', '.join(pools)} do not use GKE_METADATA; the new control plane would not provision: "
                "gcloud container node-pools update POOL --cluster CLUSTER --workload-metadata=GKE_METADATA first")
    return None


GITOPS_MARKS = ("configsync.gke.io/", "configmanagement.gke.io/", "argocd.argoproj.io/",
                "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
"""Labels and annotations the GitOps tools put on what they manage (Config Sync's
configsync.gke.io/* and configmanagement.gke.io/*, Argo CD 3's argocd.argoproj.io/*
tracking annotation, Flux's *.toolkit.fluxcd.io/*)."""
ARGO_LABEL = "app.kubernetes.io/instance"
"""Argo CD 2.x tracks what an Application manages by this label (its default `label`
tracking method; annotation tracking is the default from 3.0: Argo CD docs, "Resource
Tracking", and the 2.14 -> 3.0 upgrade notes). Helm sets the same label without any
controller, so it counts only when its value names an Argo CD Application found in the
cluster (`<name>`, or `<namespace>_<name>` for an application outside Argo CD's namespace)."""
ARGO_APPLICATIONS = "applications.argoproj.io"


def argo_application_ids(applications: list[dict]) -> set[str]:
    """The label values Argo CD 2.x label tracking would write for these Applications."""
    found = set()
    for app in applications:
        meta = app.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
        if name:
            found |= {name, f"{namespace}_{name}"}
    return found


def gitops_refusal(objects: list[dict], namespaces: list[dict], argo_ids: set[str] | None = None) -> str | None:
    """Objects (or injection-labelled namespaces) a GitOps tool owns would be re-created during
    the purge or fight the restore and the relabelling."""
    def managed(obj: dict) -> bool:
        meta = obj.get("metadata") or {}
        keys = [*(meta.get("labels") or {}), *(meta.get("annotations") or {})]
        return (any(k.startswith(GITOPS_MARKS) for k in keys)
                or str((meta.get("labels") or {}).get(ARGO_LABEL, "")) in (argo_ids or set()) - {""})
    owned = [o for o in objects if managed(o)]
    labelled = [n for n in namespaces if managed(n) and set((n.get("metadata") or {}).get("labels") or {}) & {"istio-injection", "istio.io/rev"}]
    if owned or labelled:
        return (f"{len(owned)} Istio objects and {len(labelled)} injection-labelled namespaces are managed by a GitOps tool "
                "(Config Sync, Argo CD (its tracking annotation, or 2.x's app.kubernetes.io/instance label naming an "
                "Application) or Flux marks): it would re-create them during the purge and fight the restore; "
                "pause sync for them first")
    return None


def features_bound_to(features: Any, membership: str, location: str, fleet_ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(features other than servicemesh with a spec for this membership, features whose
    config membership it is). Membership keys name the fleet project by id or number
    (GkeHub v1 Feature.membershipSpecs); `fleet_ids` holds both.

    Why it matters: re-registration deletes the membership, which drops every per-membership
    spec bound to it (Config Sync, Policy Controller, ...) and, for the config membership of
    multi-cluster ingress, the feature itself (gcloud reference, `memberships delete` and
    `memberships unregister`)."""
    wanted = {f"projects/{project}/locations/{location}/memberships/{membership}" for project in fleet_ids}
    bound, config_of = [], []
    for feature in features if isinstance(features, list) else []:
        name = str(feature.get("name", "")).rsplit("/", 1)[-1]
        if name == "servicemesh":
            continue
        if wanted & set((feature.get("membershipSpecs") or {}).keys()):
            bound.append(name)
        spec = feature.get("spec") or {}
        config_membership = str(((spec.get("multiclusteringress") or {}).get("configMembership")) or "")
        if config_membership in wanted:
            config_of.append(name)
    return sorted(set(bound)), sorted(set(config_of))


def features_refusal(bound: list[str], config_of: list[str], accepted: set[str]) -> str | None:
    if config_of:
        return (f"its membership is the config membership of {', '.join(config_of)}: re-registering it would break that "
                "feature for the whole fleet; move the config membership to another cluster first, or set "
                "gke-mesh:migration.reregisterMembership: false")
    unacknowledged = [f for f in bound if f not in accepted]
    if unacknowledged:
        return (f"fleet features {', '.join(unacknowledged)} are bound to its membership, and re-registration deletes the "
                "membership with their per-membership specs; save those specs and list the features in "
                "gke-mesh:migration.acceptMembershipFeatures, or set reregisterMembership: false")
    return None
