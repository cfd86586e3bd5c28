"""What every resource type of the stand-in provider shares: the input list, the replace
rules, Check (defaults) and Diff; each type adds its REST calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testbed.gcp_provider.rest import Rest
from testbed.gcp_provider.values import UNKNOWN, has_unknown, plain, same


@dataclass
class Config:
    """The provider's configuration (CheckConfig/Configure): only `project` is used."""

    project: str = ""
    values: dict[str, Any] = field(default_factory=dict)


class CheckError(Exception):
    """Invalid inputs: (property, reason) pairs, returned as Check failures."""

    def __init__(self, failures: list[tuple[str, str]]):
        super().__init__("; ".join(f"{p}: {r}" for p, r in failures))
        self.failures = failures


@dataclass
class DiffResult:
    changes: list[str]
    replaces: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Resource:
    """One resource type. Subclasses set the class attributes and implement the REST calls."""

    token: str = ""
    api: str = ""
    """The Google API it calls (rest.base_for)."""
    inputs: tuple[str, ...] = ()
    """Input properties (Pulumi names): the ones Diff compares."""
    replace_on: tuple[str, ...] = ()
    """Inputs whose change replaces the resource (Terraform ForceNew)."""
    required: tuple[str, ...] = ()
    computed: tuple[str, ...] = ()
    """Output-only properties, unknown in a preview of a create."""

    # ------------------------------------------------------------------ engine-facing rules
    def check(self, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        """News with the defaults the real provider applies; CheckError when invalid."""
        checked = dict(news)
        if "project" in self.inputs and not checked.get("project") and config.project:
            checked["project"] = config.project
        missing = [name for name in self.required if name not in checked or checked[name] is None or checked[name] == ""]
        if missing:
            raise CheckError([(name, f"Missing required property '{name}'") for name in missing])
        return checked

    def diff(self, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Compare old inputs with new inputs on the input properties only. An unknown new
        value counts as a change (it may differ once known)."""
        changes, replaces = [], []
        for name in self.inputs:
            old, new = olds.get(name), news.get(name)
            if has_unknown(new) or not same(old, new):
                changes.append(name)
                if name in self.replace_on:
                    replaces.append(name)
        return DiffResult(changes, replaces)

    def preview_outputs(self, inputs: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        """Outputs a preview shows: the inputs, and each computed output as before an
        update (olds) or unknown for a create."""
        outputs = dict(inputs)
        for name in self.computed:
            outputs[name] = (olds or {}).get(name, UNKNOWN)
        return outputs

    # ------------------------------------------------------------------ REST (subclasses)
    def create(self, api: Rest, inputs: dict[str, Any], config: Config) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def read(self, api: Rest, id_: str, state: dict[str, Any], config: Config) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(inputs, outputs) of the live resource, or None when it is gone."""
        raise NotImplementedError

    def update(self, api: Rest, id_: str, olds: dict[str, Any], news: dict[str, Any], config: Config) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, api: Rest, id_: str, state: dict[str, Any], config: Config) -> None:
        raise NotImplementedError


def value(inputs: dict[str, Any], name: str, default: Any = None) -> Any:
    """A plain input value (secret unwrapped)."""
    found = plain(inputs.get(name))
    return default if found is None else found


def keep_inputs(inputs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The raw (secret-wrapped) input values among `names`, for outputs."""
    return {k: v for k, v in inputs.items() if k in names}
