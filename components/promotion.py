"""The promotion gate: a stack may target a channel only once the stage before it has
verified that channel ACTIVE on every one of its clusters, as its last verify step
(`clusters.<name>.last_verify`, compared with the backup) proved it.

The previous stage's outputs are read through a StackReference *before* anything else is
registered (the reference itself is a read), so a refused promotion changes nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from components.settings import ConfigError, Settings


def gate_problem(stage: str, target: str, outputs: Any) -> str | None:
    """Why `stage`'s outputs do not allow promoting `target`, or None when they do."""
    if not isinstance(outputs, dict) or not outputs:
        return f"stage {stage} has no outputs; has it been deployed (pulumi up) with this program?"
    if outputs.get("release_channel") != target:
        return f"stage {stage} targets {outputs.get('release_channel')!r}, not {target}"
    clusters = outputs.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        return f"stage {stage} reports no clusters"
    for name, cluster in sorted(clusters.items()):
        if not isinstance(cluster, dict):
            return f"stage {stage} reports cluster {name} without details"
        last = cluster.get("last_verify") if isinstance(cluster.get("last_verify"), dict) else {}
        state = (cluster.get("release_channel"), last.get("control_plane_state"), last.get("verified"))
        if state != (target, "ACTIVE", True):
            return (f"stage {stage} has not verified {target} on cluster {name}: it has channel {state[0]}, "
                    f"control plane {state[1]} and verified {state[2]} at its last verify")
    return None


def enforce(settings: Settings) -> None:
    """Stop the program with one line unless the previous stage verified our channel."""
    promotion = settings.promotion
    if promotion.after is None:
        return
    reference = pulumi.StackReference(promotion.after)
    outputs = _sync_await(reference.outputs.future(with_unknowns=True))
    if isinstance(outputs, pulumi.output.Unknown):
        pulumi.log.warn(f"promotion gate not checked: the outputs of {promotion.after} are not known "
                        "(offline plan without --stack-outputs)")
        return
    problem = gate_problem(promotion.after, settings.release_channel, outputs)
    if problem is None:
        return
    if promotion.force:
        pulumi.log.warn(f"promotion gate overridden (force): {problem}; reason: {promotion.reason}")
        return
    raise ConfigError(f"gke-mesh:promotion: {problem}; promote only after it verifies, "
                      "or set gke-mesh:promotion.force with a reason")
