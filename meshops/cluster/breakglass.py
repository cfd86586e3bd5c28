"""Break-glass commands for the bad day, outside `pulumi up`:

- `status`: per cluster, read-only and live: GKE channel, mesh control/data plane,
  revision, management, the owning stack, the in-flight migration record, and whether
  PeerAuthentications are as the recorded backup says (security relaxed or not).
- `restore`: re-apply a recorded backup by hand, with the same checks as the restore step
  (manifest sha256 against the record, content against the manifest, every object's
  digest after applying); `--dry-run` says what it would apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshops.cluster import gcloud, record
from meshops.cluster.backup_store import peer_authentication_modes, read_backup
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.inventory import crds, live_objects
from meshops.cluster.kube import cluster_access
from meshops.cluster.objects import DESTINATION_RULE, PEER_AUTHENTICATION, istio_kinds, without_mutual_tls
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import BackupRef
from meshops.context import StepContext, revision_of
from meshops.steps.release_channel import current_channel
from meshops.steps.restore import apply_backup

HEALTHY, IN_FLIGHT, ATTENTION = 0, 3, 4
"""Exit codes of `status`: every cluster healthy; a migration in flight; something needs attention."""


class BreakGlassError(Exception):
    """A user error (bad arguments, unknown cluster): one line, exit 2."""


@dataclass(frozen=True)
class Target:
    ctx: StepContext
    stack: str


def targets(config: Path, stack: str | None, cluster: str | None) -> list[Target]:
    """The clusters of a stack file, as the program sees them (same validation)."""
    from components.platform import step_context
    from components.settings import parse_settings
    from meshops.review.offline import stack_config
    from meshops.review.plan import load_stack_file, project_defaults, stack_name

    name = stack_name(config, stack)
    settings = parse_settings(stack_config(load_stack_file(config), project_defaults()), name)
    found = [Target(step_context(c, settings), name) for c in settings.clusters if cluster in (None, c.name)]
    if not found:
        raise BreakGlassError(f"--cluster {cluster}: not in {config}; its clusters are "
                              f"{', '.join(c.name for c in settings.clusters)}")
    return found


def relaxed_destination_rules(backup, live_rules: list[dict]) -> list[str]:
    """DestinationRules that had ISTIO_MUTUAL in the backup and have it no longer (relax-security's change)."""
    now = {(r["metadata"].get("namespace", ""), r["metadata"]["name"]): r for r in live_rules}
    found = []
    for rule in backup.objects.get(DESTINATION_RULE, []):
        key = (rule["metadata"].get("namespace", ""), rule["metadata"]["name"])
        if without_mutual_tls(rule) is not None and key in now and without_mutual_tls(now[key]) is None:
            found.append(f"DestinationRule {key[0]}/{key[1]}")
    return sorted(found)


def cluster_status(target: Target, runner: Runner) -> dict[str, Any]:
    ctx = target.ctx
    channel = current_channel(run_json(runner, gcloud.describe_cluster(ctx)))
    state = mesh_state(run_json(runner, gcloud.describe_mesh(ctx.fleet_project)), ctx.membership_location, ctx.membership)
    with cluster_access(ctx, runner) as kube:
        owner = record.owner(runner, kube)
        found = record.read(runner, kube)
        relaxed: list[str] | None = None
        if found and found.backup:
            backup = read_backup(found.backup, runner)
            kinds = [k for k in istio_kinds(crds(runner, kube)) if k.resource in (PEER_AUTHENTICATION, DESTINATION_RULE)]
            live = live_objects(runner, kube, kinds) if kinds else {}
            modes = peer_authentication_modes(live.get(PEER_AUTHENTICATION, []))
            relaxed = sorted(f"PeerAuthentication {k}" for k, mode in backup.peer_authentication_modes().items() if modes.get(k) != mode)
            relaxed += relaxed_destination_rules(backup, live.get(DESTINATION_RULE, []))
    healthy = (found is None and channel == ctx.channel and state.control_plane_state == "ACTIVE"
               and state.ready_revision() == revision_of(ctx.channel) and owner in (None, target.stack))
    return {
        "cluster": ctx.cluster, "target_channel": ctx.channel, "gke_channel": channel,
        "control_plane_state": state.control_plane_state, "data_plane_state": state.data_plane_state,
        "revision": state.ready_revision() or "", "implementation": state.implementation, "management": state.management,
        "owner": owner, "migration": json.loads(found.to_json()) if found else None,
        "security_differs_from_backup": relaxed,
        "verdict": "in flight" if found else ("healthy" if healthy else "needs attention"),
    }


def render(statuses: list[dict[str, Any]]) -> str:
    lines = []
    for s in statuses:
        lines.append(f"{s['cluster']}: {s['verdict']}")
        lines.append(f"  channel      GKE {s['gke_channel']}, target {s['target_channel']}")
        lines.append(f"  mesh         control plane {s['control_plane_state']} on {s['revision'] or '-'} ({s['implementation']}), "
                     f"data plane {s['data_plane_state']}, management {s['management'] or '-'}")
        lines.append(f"  owner        {s['owner'] or '-'}")
        m = s["migration"]
        if m:
            lines.append(f"  migration    stack {m['stack']}, run {m['run_id']}, {m['from_channel']} -> {m['to_channel']}, phase {m['phase']}")
            lines.append(f"  backup       {(m.get('backup') or {}).get('location', '(none yet)')}")
            differs = s["security_differs_from_backup"]
            if differs is not None:
                lines.append(f"  security     {'as in the backup' if not differs else f'{len(differs)} security objects differ from the backup (relaxed?)'}")
    return "\n".join(lines) + "\n"


def exit_code(statuses: list[dict[str, Any]]) -> int:
    verdicts = {s["verdict"] for s in statuses}
    return ATTENTION if "needs attention" in verdicts else IN_FLIGHT if "in flight" in verdicts else HEALTHY


def restore(target: Target, runner: Runner, location: str | None, sha256: str | None, dry_run: bool) -> dict[str, Any]:
    """Apply the recorded backup (or `location` with its manifest `sha256`) to the cluster."""
    ctx = target.ctx
    with cluster_access(ctx, runner) as kube:
        found = record.read(runner, kube)
        if location is None:
            if found is None or found.backup is None:
                raise BreakGlassError(f"cluster {ctx.cluster} has no migration record naming a backup; "
                                      "pass --backup URI and --sha256 (from the record.json beside it, once you trust it)")
            ref = found.backup
        elif found is not None and found.backup is not None and found.backup.location == location.rstrip("/"):
            ref = found.backup
        elif sha256:
            ref = BackupRef(location.rstrip("/"), sha256)
        else:
            raise BreakGlassError(f"--backup {location} is not the backup the cluster's record names; pass --sha256 of its manifest")
        backup = read_backup(ref, runner)
        from_revision = found.from_revision if found else f"asm-managed-{backup.from_channel}"
        summary = apply_backup(runner, kube, backup, ref.location, ctx.cluster, from_revision, revision_of(ctx.channel), dry_run)
    return {"cluster": ctx.cluster, "backup": ref.location, "dry_run": dry_run, **summary}


def restore_text(result: dict[str, Any]) -> str:
    verb = "would apply" if result["dry_run"] else "applied and verified by digest"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(result["by_kind"].items())) or "nothing"
    lines = [f"{result['cluster']}: {verb} {result['restored']} objects from {result['backup']}: {kinds}"]
    if result["created_namespaces"]:
        lines.append(f"  namespaces {'to create' if result['dry_run'] else 'created'}: {', '.join(result['created_namespaces'])}")
    if result["archived_objects"]:
        lines.append(f"  {result['archived_objects']} config maps/secrets of istio-system and asm-system stay in the backup (not applied)")
    return "\n".join(lines) + "\n"


def guarded(action, *args):
    """Run a break-glass action, turning the expected failures into one line."""
    try:
        return action(*args), None
    except (BreakGlassError, StepFailed) as error:
        return None, str(error)
