"""What a command resource's text runs: `python3 -m meshops <words>` -> its stdout.

The one dispatcher for the CLI (`meshops/__main__.py`, under `pulumi up`) and for the
tests' engine driver, so both run exactly what the registered text names."""

from __future__ import annotations

import json
from typing import Mapping

from meshops.cluster.keep import kept_result
from meshops.cluster.process import Tools
from meshops.context import Decision, StepInput
from meshops.steps import STEPS, guard


def execute(words: list[str], env: Mapping[str, str], tools: Tools) -> str:
    """Raises ContextError (bad environment), KeepError or StepFailed."""
    if words[0] == "keep":
        return kept_result(words[1], env)
    name = words[0]
    module = guard if name in ("guard", "guard-delete") else STEPS[name]
    action = guard.release if name == "guard-delete" else module.run
    inp = StepInput.from_environment(env, needs_decision=module.NEEDS_DECISION, needs_backup=module.NEEDS_BACKUP,
                                     needs_channel=module is not guard)
    result = action(inp, tools)
    return result.to_json() if isinstance(result, Decision) else json.dumps(result, sort_keys=True)
