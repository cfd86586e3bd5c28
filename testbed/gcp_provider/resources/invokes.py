"""The provider functions the program calls (Invoke), each one GET.

Sources (output property names are the wire names the Python SDK's result classes read):
- gcp:gkehub/getMembership:getMembership: pulumi_gcp 10.2.0 gkehub/get_membership.py
  (GetMembershipResult: authorities[{issuer}], deletionPolicy, effectiveLabels,
  endpoints[{gkeClusters[{resourceLink}]}], id, labels, location, membershipId, name,
  project, pulumiLabels) and gkehub/outputs.py; the REST Membership (gkehub v1
  `GET v1/projects/P/locations/L/memberships/M`) has single `endpoint.gkeCluster` and
  `authority` objects, which Terraform flattens into one-element lists. The id format
  `projects/{project}/locations/{location}/memberships/{membership_id}` follows
  terraform-provider-google data_source_google_gke_hub_membership.go (not re-read here).
- gcp:container/getCluster:getCluster: pulumi_gcp container/get_cluster.py, only the
  fields the program reads (endpoint, masterAuths[0].clusterCaCertificate) and a few
  identifying ones (name, location, project, selfLink, releaseChannels, fleets,
  workloadIdentityConfigs, masterVersion); container v1 `GET v1/projects/P/locations/L/clusters/C`.
- gcp:organizations/getProject:getProject: pulumi_gcp organizations/get_project.py;
  cloudresourcemanager v1 `GET v1/projects/P` (projectNumber, parent{type, id}, labels).
"""

from __future__ import annotations

from typing import Any, Callable

from testbed.gcp_provider.resources.base import Config
from testbed.gcp_provider.rest import ApiError, Rest


class InvokeError(Exception):
    """A function that cannot answer (not found, missing argument): shown to the user."""


def _arg(args: dict[str, Any], name: str, default: str = "") -> str:
    found = args.get(name) or default
    if not found:
        raise InvokeError(f"missing required argument '{name}'")
    return str(found)


def _get(api: Rest, path: str, what: str) -> dict[str, Any]:
    try:
        return api.get(path)
    except ApiError as error:
        if error.status == 404:
            raise InvokeError(f"{what} not found ({path})") from None
        raise


def get_membership(api: Rest, args: dict[str, Any], config: Config) -> dict[str, Any]:
    project = _arg(args, "project", config.project)
    location = _arg(args, "location")
    membership = _arg(args, "membershipId")
    live = _get(api, f"v1/projects/{project}/locations/{location}/memberships/{membership}", "membership")
    link = ((live.get("endpoint") or {}).get("gkeCluster") or {}).get("resourceLink")
    issuer = (live.get("authority") or {}).get("issuer")
    labels = live.get("labels") or {}
    return {
        "id": f"projects/{project}/locations/{location}/memberships/{membership}",
        "name": live.get("name", f"projects/{project}/locations/{location}/memberships/{membership}"),
        "membershipId": membership, "location": location, "project": project,
        "endpoints": [{"gkeClusters": [{"resourceLink": link}] if link else []}] if live.get("endpoint") else [],
        "authorities": [{"issuer": issuer}] if issuer else [],
        "labels": labels, "effectiveLabels": labels, "pulumiLabels": labels,
        "deletionPolicy": "",
    }


def get_cluster(api: Rest, args: dict[str, Any], config: Config) -> dict[str, Any]:
    project = _arg(args, "project", config.project)
    location = _arg(args, "location")
    name = _arg(args, "name")
    live = _get(api, f"v1/projects/{project}/locations/{location}/clusters/{name}", "cluster")
    auth = live.get("masterAuth") or {}
    fleet = live.get("fleet") or {}
    channel = (live.get("releaseChannel") or {}).get("channel")
    pool = (live.get("workloadIdentityConfig") or {}).get("workloadPool")
    membership = fleet.get("membership", "")
    return {
        "id": f"projects/{project}/locations/{location}/clusters/{name}",
        "name": name, "location": location, "project": project,
        "endpoint": live.get("endpoint", ""),
        "selfLink": live.get("selfLink", ""),
        "masterVersion": live.get("currentMasterVersion", ""),
        "masterAuths": [{"clusterCaCertificate": auth.get("clusterCaCertificate", ""),
                         "clientCertificate": auth.get("clientCertificate", ""), "clientKey": auth.get("clientKey", ""),
                         "clientCertificateConfigs": []}],
        "releaseChannels": [{"channel": channel}] if channel else [],
        "workloadIdentityConfigs": [{"workloadPool": pool}] if pool else [],
        "fleets": [{"project": fleet.get("project", ""), "membership": membership,
                    "membershipId": membership.rsplit("/", 1)[-1] if membership else "",
                    "membershipLocation": membership.split("/locations/")[-1].split("/")[0] if "/locations/" in membership else "",
                    "membershipType": fleet.get("membershipType", ""),
                    "preRegistered": bool(fleet.get("preRegistered", False))}] if fleet else [],
    }


def get_project(api: Rest, args: dict[str, Any], config: Config) -> dict[str, Any]:
    project = _arg(args, "projectId", config.project)
    live = _get(api, f"v1/projects/{project}", "project")
    parent = live.get("parent") or {}
    labels = live.get("labels") or {}
    return {
        "id": f"projects/{project}", "projectId": live.get("projectId", project),
        "number": str(live.get("projectNumber", "")), "name": live.get("name", project),
        "orgId": parent.get("id", "") if parent.get("type") == "organization" else "",
        "folderId": parent.get("id", "") if parent.get("type") == "folder" else "",
        "labels": labels, "effectiveLabels": labels, "pulumiLabels": labels,
        "autoCreateNetwork": True, "billingAccount": "", "deletionPolicy": "",
    }


INVOKES: dict[str, tuple[str, Callable[[Rest, dict[str, Any], Config], dict[str, Any]]]] = {
    "gcp:gkehub/getMembership:getMembership": ("gkehub", get_membership),
    "gcp:container/getCluster:getCluster": ("container", get_cluster),
    "gcp:organizations/getProject:getProject": ("cloudresourcemanager", get_project),
}
"""token -> (the API it calls, the function)."""
