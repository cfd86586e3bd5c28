"""Helpers shared by the chain's steps."""

from __future__ import annotations

from typing import Any

from meshops.context import StepInput


def skipped(inp: StepInput) -> dict[str, Any] | None:
    """The result of a step when preflight decided to skip, else None."""
    assert inp.decision is not None
    if inp.decision.migrate:
        return None
    return {"cluster": inp.ctx.cluster, "skipped": True, "reason": inp.decision.reason}
