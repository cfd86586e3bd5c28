"""One module per imperative step. Each has `NEEDS_DECISION` (whether it reads preflight's
decision), `OPTIONS` (the migration options it reads; only those reach its environment),
`commands(inp)`, the CLI calls it may make (for the plan and for review), and
`run(inp, tools)`, which makes them."""

from __future__ import annotations

from types import ModuleType

from meshops.context import Options, StepContext

from meshops.steps import (
    backup,
    disable_management,
    enable_management,
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
CHAIN_AFTER_CHANNEL = ("reregister-membership", "enable-management", "wait-ready", "reinject", "restore", "verify")

STEPS: dict[str, ModuleType] = {
    "preflight": preflight,
    "backup": backup,
    "relax-security": relax_security,
    "disable-management": disable_management,
    "uninject": uninject,
    "purge": purge,
    "release-channel": release_channel,
    "reregister-membership": reregister_membership,
    "enable-management": enable_management,
    "wait-ready": wait_ready,
    "reinject": reinject,
    "restore": restore,
    "verify": verify,
}


def environment_for(step: str, ctx: StepContext, options: Options) -> dict[str, str]:
    """A step's environment without the decision (which comes from preflight at run time):
    the cluster's identity and only the options this step reads."""
    return {**ctx.environment(), **options.environment(STEPS[step].OPTIONS)}
