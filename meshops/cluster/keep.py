"""The `update` of every step's command resource: keep the step's last result, run nothing.

pulumi-command 1.2.1 runs a Command's `update` on any input change other than
`triggers`, or its `create` again when there is no `update`
(provider/pkg/provider/local/commandController.go, Command.Update), and puts the
previous stdout in the update's environment as PULUMI_COMMAND_STDOUT
(commandOutputs.go, run; on unless addPreviousOutputInEnv is false). So an option edit,
a provider upgrade or a changed input from an earlier step reaches this instead of the
step: its stdout (and so every later step's input) stays what it was. Only a change of
the target channel or of `gke-mesh:migration.rerun` (both in `triggers`) runs a step.
"""

from __future__ import annotations

import json
from typing import Mapping

PREVIOUS_STDOUT = "PULUMI_COMMAND_STDOUT"


class KeepError(Exception):
    pass


def kept_result(step: str, env: Mapping[str, str]) -> str:
    """The previous stdout, checked to be a step result."""
    previous = env.get(PREVIOUS_STDOUT, "")
    try:
        parsed = json.loads(previous)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise KeepError(f"meshops keep {step}: the previous result ({PREVIOUS_STDOUT}) is missing or not a step result; "
                        "nothing was run. To run the step again set gke-mesh:migration.rerun to a new value")
    return previous
