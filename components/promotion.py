"""The promotion gate: a stack may move a cluster to a channel only once the stage before it
has verified that channel ACTIVE on every one of its clusters that target it, as their last
verify step (`clusters.<name>.last_verify`, compared with the backup) proved it.

The gate applies only to what is changing: this stack's own last deployed outputs (a
StackReference to itself) say which channel each cluster was deployed with, and only the
channels some cluster is moving to are checked. An ordinary merge (a README fix, an option
edit) goes through even while an earlier stage is ahead on a channel this one has not
reached. Both references are reads, made before anything is registered, so a refused
promotion changes nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import ConfigError, Settings


def gate_problem(stage: str, target: str, outputs: Any) -> str | None:
    """Why `stage`'s outputs do not allow promoting `target`, or None when they do."""
    if not isinstance(outputs, dict) or not outputs:
        return f"stage {stage} has no outputs; has it been deployed (pulumi up) with this program?"
    clusters = outputs.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        return f"stage {stage} reports no clusters"
    if any(not isinstance(cluster, dict) for cluster in clusters.values()):
        name = next(n for n, c in sorted(clusters.items()) if not isinstance(c, dict))
        return f"stage {stage} reports cluster {name} without details"
    on_target = {name: c for name, c in sorted(clusters.items()) if c.get("release_channel") == target}
    if not on_target:
        found = sorted({str(c.get("release_channel")) for c in clusters.values()})
        return f"stage {stage} has no cluster on {target} (its clusters target {', '.join(found)})"
    for name, cluster in on_target.items():
        last = cluster.get("last_verify") if isinstance(cluster.get("last_verify"), dict) else {}
        state = (last.get("control_plane_state"), last.get("verified"))
        if state != ("ACTIVE", True):
            return (f"stage {stage} has not verified {target} on cluster {name}: control plane {state[0]} "
                    f"and verified {state[1]} at its last verify")
    return None


def moving(settings: Settings, deployed: Any) -> dict[str, list[str]]:
    """Target channel -> this stack's clusters moving to it: those whose last deployed
    channel (this stack's own outputs) differs, and those exported with the target but whose
    migration ran without verifying it (a `pulumi up --target` registers the new channel
    beside the old proof: components/platform.py verify_outputs). A first deployment moves
    every cluster."""
    clusters = deployed.get("clusters") if isinstance(deployed, dict) else None
    clusters = clusters if isinstance(clusters, dict) else {}
    targets: dict[str, list[str]] = {}
    for cluster in settings.clusters:
        was = clusters.get(cluster.name) if isinstance(clusters.get(cluster.name), dict) else {}
        last = was.get("last_verify") if isinstance(was.get("last_verify"), dict) else {}
        unproven = bool(last.get("run_id")) and last.get("verified") is not True
        if was.get("release_channel") != cluster.release_channel or unproven:
            targets.setdefault(cluster.release_channel, []).append(cluster.name)
    return targets


async def read_outputs(name: str, key: str) -> Any:
    """A stack's outputs (unknown offline); a stack that cannot be read is a one-line error."""
    try:
        return await pulumi.StackReference(name).outputs.future(with_unknowns=True)
    except Exception as error:  # the engine's error for a missing or misspelled stack
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{key}: stack {name} could not be read ({reason}); write it as <org>/<project>/<stack> "
                          "and deploy it first") from None


async def enforce(settings: Settings) -> None:
    """Stop the program with one line unless the previous stage verified every channel
    this stack is moving a cluster to."""
    promotion = settings.promotion
    if promotion.after is None:
        return
    this_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    deployed = await read_outputs(this_stack, "gke-mesh:promotion")
    if isinstance(deployed, pulumi.output.Unknown):
        deployed = {}  # offline: as if first deployed, every cluster is moving
    targets = moving(settings, deployed)
    if not targets:
        return
    outputs = await read_outputs(promotion.after, "gke-mesh:promotion.after")
    if isinstance(outputs, pulumi.output.Unknown):
        pulumi.log.warn(f"promotion gate not checked: the outputs of {promotion.after} are not known "
                        "(offline plan without --stack-outputs)")
        return
    for target, names in sorted(targets.items()):
        problem = gate_problem(promotion.after, target, outputs)
        if problem is None:
            continue
        if promotion.force:
            pulumi.log.warn(f"promotion gate overridden (force): {problem}; reason: {promotion.reason}")
            continue
        raise ConfigError(f"gke-mesh:promotion: {problem} (moving {', '.join(names)} to {target}); promote only after it "
                          "verifies, or set gke-mesh:promotion.force with a reason (also to resume a migration already "
                          "under way here: see README, When a migration fails)")
