"""What a command resource's text runs: `python3 -m meshops <words>` -> its stdout.

The one dispatcher for the CLI (`meshops/__main__.py`, under `pulumi up`) and for the
tests' engine driver, so both run exactly what the registered text names."""

from __future__ import annotations

import json
from typing import Mapping

from meshops.cluster.keep import PREVIOUS_STDOUT, kept_result
from meshops.cluster.process import Tools
from meshops.cluster.trust import KEY_ENV, new_key_result
from meshops.context import GUARD_KEY, ContextError, Decision, StepInput
from meshops.steps import STEPS, guard, release_channel

STACK_KEY = "stack-key"
"""The command that draws the stack's key (meshops.cluster.trust); its resource is never replaced."""


def execute(words: list[str], env: Mapping[str, str], tools: Tools) -> str:
    """Raises ContextError (bad environment), KeepError or StepFailed."""
    if words[0] == "keep":
        return kept_result(words[1], env)
    name = words[0]
    if name == STACK_KEY:
        return new_key_result()
    module = guard if name in ("guard", "guard-delete") else STEPS[name]
    action = guard.release if name == "guard-delete" else module.run
    if name == "guard-delete":  # the guard's own id (and whether it is an earlier version's) is in its stored stdout
        env = {**env, GUARD_KEY: env.get(PREVIOUS_STDOUT, "")}
        if KEY_ENV not in env:
            raise ContextError("this guard was stored by a gke-mesh version before stack keys, so it cannot check who wrote the "
                               "cluster's record: run `pulumi up` once with the cluster still in the stack (that stores the key), "
                               "then remove the cluster or destroy the stack")
    inp = StepInput.from_environment(env, needs_decision=module.NEEDS_DECISION, needs_backup=module.NEEDS_BACKUP,
                                     needs_channel=module is not guard,
                                     needs_key=module is not release_channel and name != "guard")
    result = action(inp, tools)
    return result.to_json() if isinstance(result, Decision) else json.dumps(result, sort_keys=True)
