"""One module per imperative step. Each has `NEEDS_DECISION` (whether it reads preflight's
decision), `NEEDS_BACKUP` (whether it reads the backup reference from state: see
`BACKUP_SOURCE`), `OPTIONS` (the migration options it reads; only those reach its environment),
`commands(inp)`, the CLI calls it may make (for the plan and for review), and
`run(inp, tools)`, which makes them."""

from __future__ import annotations

from types import ModuleType

from meshops.context import Options, StepContext

from meshops.steps import (
    backup,
    guard,
    mesh_management,
    preflight,
    purge,
    reinject,
    relax_security,
    release_channel,
    reregister_membership,
    restore,
    uninject,
    verify,
    wait_ready,
)

CHAIN_BEFORE_CHANNEL = ("preflight", "backup", "relax-security", "disable-management", "uninject", "purge")
CHAIN_AFTER_CHANNEL = ("reregister-membership", "enable-management", "wait-ready", "restore", "reinject", "verify")
"""restore before reinject: security policies are back before any workload restarts onto a new sidecar."""

STEPS: dict[str, ModuleType | mesh_management.ManagementStep] = {
    "preflight": preflight,
    "backup": backup,
    "relax-security": relax_security,
    "disable-management": mesh_management.disable,
    "uninject": uninject,
    "purge": purge,
    "release-channel": release_channel,
    "reregister-membership": reregister_membership,
    "enable-management": mesh_management.enable,
    "wait-ready": wait_ready,
    "restore": restore,
    "reinject": reinject,
    "verify": verify,
}
GUARD = "guard"


def backup_source(step: str) -> str:
    """The step whose result carries the backup reference `step` reads: the backup step's
    until the purge, then the purge's (which names a supplementary backup if it took one)."""
    return "backup" if CHAIN_BEFORE_CHANNEL.index("purge") >= _position(step) else "purge"


def _position(step: str) -> int:
    order = (*CHAIN_BEFORE_CHANNEL, *CHAIN_AFTER_CHANNEL)
    return order.index(step)


def environment_for(step: str, ctx: StepContext, options: Options) -> dict[str, str]:
    """A step's environment without the decision (which comes from preflight at run time):
    the cluster's identity and only the options this step reads."""
    return {**ctx.environment(), **options.environment(STEPS[step].OPTIONS)}
