"""The contract between a Pulumi command resource and the step it runs.

Values travel through the command's `environment`, never through its shell text, so
no config value is ever parsed by a shell. `StepContext.environment()` is what the
program registers; `StepContext.from_environment()` is what the step reads back.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Mapping

PREFIX = "GKE_MESH_"
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._/:@=,-]*")


class ContextError(Exception):
    """The step's environment is missing or malformed (a bug or a hand-run step)."""


@dataclass(frozen=True)
class StepContext:
    """Identity of the cluster a step acts on, and the channel it moves to."""

    project: str
    location: str
    cluster: str
    fleet_project: str
    membership: str
    membership_location: str
    channel: str

    def environment(self) -> dict[str, str]:
        """Environment variables for a command resource; keys sorted for stable diffs."""
        return {PREFIX + name.upper(): value for name, value in sorted(asdict(self).items())}

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "StepContext":
        values = {}
        for item in fields(cls):
            key = PREFIX + item.name.upper()
            value = env.get(key, "")
            if not value or not _SAFE_VALUE.fullmatch(value):
                raise ContextError(f"environment variable {key} is missing or malformed ({value!r}); run steps through `pulumi up`")
            values[item.name] = value
        return cls(**values)


_LAUNCHER = "python3 -m meshops "


def command_line(step: str) -> str:
    """The `create` text of a command resource running `step`. Fixed text, no values:
    it is the same on every machine and a shell has nothing to interpret in it."""
    return _LAUNCHER + step


def step_of(command_text: str) -> str | None:
    """The step a command resource's `create` text runs, or None for other commands."""
    return command_text[len(_LAUNCHER):] if command_text.startswith(_LAUNCHER) else None
