"""argv builders for gcloud. Flags use `--flag=value` so a value can never become a flag."""

from __future__ import annotations

from meshops.cluster import names
from meshops.context import StepContext


def describe_cluster(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "clusters", "describe", ctx.cluster,
            f"--project={ctx.project}", f"--location={ctx.location}", "--format=json"]


def server_config(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "get-server-config", f"--project={ctx.project}", f"--location={ctx.location}", "--format=json"]


def running_operations(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "operations", "list", f"--project={ctx.project}", f"--location={ctx.location}",
            "--filter=status=RUNNING", "--format=json"]


def describe_project(project: str) -> list[str]:
    return ["gcloud", "projects", "describe", project, "--format=json"]


def update_release_channel(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "clusters", "update", ctx.cluster,
            f"--project={ctx.project}", f"--location={ctx.location}",
            f"--release-channel={ctx.channel}", "--quiet"]


def list_memberships(ctx: StepContext) -> list[str]:
    return ["gcloud", "container", "fleet", "memberships", "list", f"--project={ctx.fleet_project}", "--format=json"]


def list_features(fleet_project: str) -> list[str]:
    """Every enabled fleet feature with its per-membership specs (GkeHub v1 ListFeatures)."""
    return ["gcloud", "container", "fleet", "features", "list", f"--project={fleet_project}", "--format=json"]


def describe_mesh(fleet_project: str) -> list[str]:
    return ["gcloud", "container", "fleet", "mesh", "describe", f"--project={fleet_project}", "--format=json"]


def set_mesh_management(ctx: StepContext, membership: str, management: str) -> list[str]:
    """`management` is manual or automatic. Never `fleet mesh disable`: that is fleet-wide."""
    assert management in ("manual", "automatic")
    return ["gcloud", "container", "fleet", "mesh", "update", f"--management={management}",
            f"--memberships={names.membership(membership)}", f"--project={ctx.fleet_project}", f"--location={ctx.membership_location}"]


def unregister_membership(ctx: StepContext, membership: str) -> list[str]:
    """Unregister a GKE cluster registered through the fleet API. Without
    --uninstall-connect-agent, gcloud 528 reads the membership, checks that its resource link
    is this cluster's, and deletes it, with no Kubernetes client; a membership already gone is
    not an error (surface/container/fleet/memberships/unregister.py, _UnregisterGKE).
    `memberships delete` is documented for stale memberships only (its help text)."""
    return ["gcloud", "container", "fleet", "memberships", "unregister", names.membership(membership),
            f"--gke-uri={cluster_uri(ctx)}", f"--project={ctx.fleet_project}", f"--location={ctx.membership_location}", "--quiet"]


def list_membership_bindings(ctx: StepContext, membership: str) -> list[str]:
    """The membership's scope bindings (gkehub v1 memberships.bindings.list): a membership with
    sub-resources is not deleted (gcloud 528 sends no `force`)."""
    return ["gcloud", "container", "fleet", "memberships", "bindings", "list", f"--membership={names.membership(membership)}",
            f"--location={ctx.membership_location}", f"--project={ctx.fleet_project}", "--format=json"]


def cluster_uri(ctx: StepContext) -> str:
    return f"https://container.googleapis.com/v1/projects/{ctx.project}/locations/{ctx.location}/clusters/{ctx.cluster}"


def register_membership(ctx: StepContext, membership: str) -> list[str]:
    """Register under the configured name (GKE's own registration would name it after the cluster)."""
    return ["gcloud", "container", "fleet", "memberships", "register", names.membership(membership), f"--gke-uri={cluster_uri(ctx)}",
            "--enable-workload-identity", f"--project={ctx.fleet_project}", f"--location={ctx.membership_location}", "--quiet"]


def leave_fleet(ctx: StepContext) -> list[str]:
    """Unregister a cluster registered the GKE way (its `fleet` block): GKE deletes the membership."""
    return ["gcloud", "container", "clusters", "update", ctx.cluster, f"--project={ctx.project}", f"--location={ctx.location}",
            "--clear-fleet-project", "--quiet"]


def join_fleet(ctx: StepContext) -> list[str]:
    """Register the GKE way (how the June 2025 Zenn write-up
    'GKE Service Mesh のリリースチャンネル変更と再インストール手順' re-registered): a membership named after the cluster."""
    return ["gcloud", "container", "clusters", "update", ctx.cluster, f"--project={ctx.project}", f"--location={ctx.location}",
            f"--fleet-project={ctx.fleet_project}", "--quiet"]


def list_enabled_services(project: str) -> list[str]:
    return ["gcloud", "services", "list", "--enabled", f"--project={project}", "--format=json"]


def storage_write(url: str) -> list[str]:
    """Write stdin to one object (`-` streams: no local copy of the backup)."""
    return ["gcloud", "storage", "cp", "-", names.storage_url(url)]


def storage_read(url: str) -> list[str]:
    return ["gcloud", "storage", "cat", names.storage_url(url)]


def describe_object(url: str) -> list[str]:
    """One object's metadata, its `generation` among them (gcloud's ObjectDisplayTitlesAndDefaults)."""
    return ["gcloud", "storage", "objects", "describe", names.storage_url(url), "--format=json"]


def list_objects(url: str) -> list[str]:
    """Objects matching a wildcard URL (`**` recurses), with their names and generations."""
    return ["gcloud", "storage", "objects", "list", names.storage_url(url), "--format=json"]


def describe_bucket(bucket: str) -> list[str]:
    return ["gcloud", "storage", "buckets", "describe", bucket, "--format=json"]
