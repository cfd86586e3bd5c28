"""Break-glass commands for the bad day, outside `pulumi up`:

- `status`: per cluster, read-only and live: GKE channel, mesh control/data plane,
  revision, management, the owning stack, the in-flight migration record (or, when it is
  gone, the newest unfinished run's signed copy beside its backup), and whether
  PeerAuthentications are as the recorded backup says (security relaxed or not).
- `restore`: re-apply a recorded backup by hand, with the same checks as the restore step
  (the record's signature, its pinned object generations, manifest sha256, content
  against the manifest, only what a mesh backup may hold, every object's digest after
  applying); `--dry-run` says what it would apply.

Records are checked with the stack's key, read from its state with the Pulumi CLI
(`pulumi stack export --show-secrets`: whoever runs this can decrypt the stack's state).
Without it, `status` shows records as unchecked and `restore` takes only a backup named
explicitly with `--backup` and `--sha256`, and still refuses one of another cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import Owner, peer_authentication_modes, read_backup
from meshops.cluster.fleet_state import mesh_state
from meshops.cluster.inventory import crds, live_objects
from meshops.cluster.kube import cluster_access
from meshops.cluster.objects import DESTINATION_RULE, PEER_AUTHENTICATION, istio_kinds, without_mutual_tls
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import BackupRef, Ledger, MigrationRecord
from meshops.cluster.runs import runs_in
from meshops.cluster.trust import MissingKey, StackKey
from meshops.context import StepContext, revision_of
from meshops.steps.common import finished, signed_copy
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
    """The stack's identity, <org>/<project>/<stack>."""
    backup_uri: str
    key: StackKey | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.stack, self.ctx.project, self.ctx.location, self.ctx.cluster)

    def ledger(self, runner: Runner, kube) -> Ledger | None:
        return Ledger(runner, kube, self.key, self.ctx) if self.key else None


def identity_of(stack: str | None, config: Path) -> tuple[str, str]:
    """(bare stack name, <org>/<project>/<stack>) from --stack, which may be either; a bare
    name is taken to be in the organization a file or self-hosted backend reports."""
    from meshops.review.offline import ORGANIZATION, PROJECT
    from meshops.review.plan import stack_name

    if stack and stack.count("/") == 2:
        org, project, bare = stack.split("/")
        return stack_name(config, bare), f"{org}/{project}/{stack_name(config, bare)}"
    bare = stack_name(config, stack)
    return bare, f"{ORGANIZATION}/{PROJECT}/{bare}"


def with_key(found: list[Target], key: StackKey | None) -> list[Target]:
    return [replace(target, key=key) for target in found]


def targets(config: Path, stack: str | None, cluster: str | None, key: StackKey | None = None) -> list[Target]:
    """The clusters of a stack file, as the program sees them (same validation)."""
    from components.platform import step_context
    from components.settings import parse_settings
    from meshops.review.offline import stack_config
    from meshops.review.plan import load_stack_file, project_defaults

    bare, identity = identity_of(stack, config)
    settings = parse_settings(stack_config(load_stack_file(config), project_defaults()), bare)
    found = [Target(step_context(c, settings), identity, c.migration.backup_uri, key)
             for c in settings.clusters if cluster in (None, c.name)]
    if not found:
        raise BreakGlassError(f"--cluster {cluster}: not in {config}; its clusters are "
                              f"{', '.join(c.name for c in settings.clusters)}")
    return found


def key_from_state(identity: str, directory: Path) -> tuple[StackKey | None, str]:
    """The stack's key from its state (`pulumi stack export --show-secrets`), or None and why not."""
    if shutil.which("pulumi") is None:
        return None, "the Pulumi CLI is not installed"
    done = subprocess.run(["pulumi", "stack", "export", "--show-secrets", f"--stack={identity}", "--non-interactive"],
                          capture_output=True, text=True, cwd=directory, timeout=300, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return None, ((done.stderr.strip().splitlines() or ["pulumi stack export failed"])[-1])[:200]
    try:
        resources = json.loads(done.stdout)["deployment"].get("resources") or []
        stdout = next(r["outputs"]["stdout"] for r in resources if str(r.get("urn", "")).endswith("::stack-key")
                      and r.get("type") == "command:local:Command")
        return StackKey.from_environment({"GKE_MESH_STACK_KEY": _plaintext(stdout)}, identity), ""
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError, MissingKey):
        return None, "the stack's state holds no stack-key resource (run `pulumi up` with this version first)"


def _plaintext(value: Any) -> str:
    """A secret output as `stack export --show-secrets` prints it ({"4dabf18193072939515e22adb298388d": ..., "plaintext": "..."})."""
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def relaxed_destination_rules(backup, live_rules: list[dict]) -> list[str]:
    """DestinationRules that had ISTIO_MUTUAL in the backup and have it no longer (relax-security's change)."""
    now = {(r["metadata"].get("namespace", ""), r["metadata"]["name"]): r for r in live_rules}
    found = []
    for rule in backup.objects.get(DESTINATION_RULE, []):
        key = (rule["metadata"].get("namespace", ""), rule["metadata"]["name"])
        if without_mutual_tls(rule) is not None and key in now and without_mutual_tls(now[key]) is None:
            found.append(f"DestinationRule {key[0]}/{key[1]}")
    return sorted(found)


def record_in_flight(target: Target, runner: Runner, kube) -> tuple[MigrationRecord | None, str, str | None]:
    """(the record, where it was found, why it could not be checked): the in-cluster record,
    else the newest unfinished run's copy beside its backup (its in-cluster record deleted)."""
    ledger = target.ledger(runner, kube)
    if ledger is None:
        found = run_json(runner, kube.get_one("configmap", "gke-mesh-migration", "kube-system"))
        if not found:
            return None, "", "no stack key"
        content = json.loads((found.get("data") or {}).get("record", "") or "{}")
        return MigrationRecord.from_content(content), "kube-system (signature not checked: no stack key)", "no stack key"
    found = ledger.read()
    if found is not None:
        return found, "kube-system", None
    runs = runs_in(target.owner.folder(target.backup_uri), runner) if target.backup_uri else {}
    latest = runs[max(runs)] if runs else None
    if latest is None or finished(ledger, latest) is not None:
        return None, "", None
    copy = signed_copy(ledger, latest.folder)
    if copy is not None and copy.phase != "verified":
        return copy, f"{latest.folder}/record.json (the in-cluster record is gone)", None
    return None, "", None


def cluster_status(target: Target, runner: Runner) -> dict[str, Any]:
    ctx = target.ctx
    channel = current_channel(run_json(runner, gcloud.describe_cluster(ctx)))
    state = mesh_state(run_json(runner, gcloud.describe_mesh(ctx.fleet_project)), ctx.membership_location, ctx.membership)
    with cluster_access(ctx, runner) as kube:
        ledger = target.ledger(runner, kube)
        claim = ledger.owner() if ledger else None
        owner = claim.stack if claim else run_json(runner, kube.get_one("configmap", "gke-mesh-owner", "kube-system"))
        owner = owner if isinstance(owner, str) or owner is None else str((owner.get("data") or {}).get("stack", ""))
        found, where, unchecked = record_in_flight(target, runner, kube)
        relaxed: list[str] | None = None
        if found and found.backup and not unchecked:
            backup = read_backup(found.backup, runner, target.owner, found.run_id)
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
        "owner": owner, "migration": json.loads(found.to_json()) if found else None, "record_found_at": where or None,
        "record_checked": found is not None and unchecked is None,
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
            lines.append(f"  record       {s['record_found_at']}")
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
        found, _, unchecked = record_in_flight(target, runner, kube) if target.key else (None, "", "no stack key")
        if location is None:
            if found is None or found.backup is None:
                raise BreakGlassError(f"cluster {ctx.cluster}: no migration record of this stack names a backup"
                                      + (f" ({unchecked}: records cannot be checked)" if unchecked else "")
                                      + "; pass --backup URI and --sha256 (from the record.json beside it, once you trust it)")
            ref = found.backup
        elif found is not None and found.backup is not None and found.backup.location == location.rstrip("/"):
            ref = found.backup
        elif sha256:
            ref = BackupRef(location.rstrip("/"), sha256)
        else:
            raise BreakGlassError(f"--backup {location} is not the backup a checked record of this stack names; "
                                  "pass --sha256 of its manifest")
        backup = read_backup(ref, runner)
        problem = target.owner.problem(backup, ref.location, None)
        if problem:
            raise BreakGlassError(f"--backup {ref.location} is not a backup of cluster {ctx.cluster} of stack {target.stack}: "
                                  f"{problem}; refusing to apply it here")
        from_revision = found.from_revision if found else revision_of(backup.from_channel)
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
