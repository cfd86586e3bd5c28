"""The contract between a Pulumi command resource and the step it runs.

Values travel through the command's `environment`, never through its shell text, so
no config value is ever parsed by a shell. The program registers
`StepInput.environment(...)`; the step reads it back with `StepInput.from_environment`.
Each step receives only the options it uses, so changing one option re-runs only the
steps that read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from meshops.cluster.trust import KEY_ENV, MissingKey, StackKey

PREFIX = "GKE_MESH_"
DECISION_KEY = PREFIX + "DECISION"
BACKUP_KEY = PREFIX + "BACKUP_FROM"
"""The stdout of the step that produced this run's backup reference (backup, or purge
after a drift supplement), from Pulumi state: the one source of the backup's location."""
GUARD_KEY = PREFIX + "GUARD"
"""The guard resource's stdout, from Pulumi state: its id names the resource that holds the
owner claim (a renamed guard's old resource must not release its successor's claim)."""
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._/:@=,-]*")
UNSUPPORTED = ("Google does not support changing a managed Cloud Service Mesh's release channel in place, nor switching a "
               "membership from manual back to automatic management (Cloud Service Mesh, \"Supported features (managed)\", "
               "limitations); each migrating cluster runs without sidecars and with mTLS relaxed for about 12 minutes "
               "(measured: bench/README.md, most of it Google's provisioning). The supported way is a new cluster on the "
               "target channel")
"""Said on the README's first screen, by preflight when it migrates, and by the config check
that asks non-dev stacks to acknowledge it."""
_CHANNELS = ("rapid", "regular", "stable")


class ContextError(Exception):
    """The step's environment is missing or malformed (a bug or a hand-run step)."""


def _read(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value or not _SAFE_VALUE.fullmatch(value):
        raise ContextError(f"environment variable {key} is missing or malformed ({value[:60]!r}); run steps through `pulumi up`")
    return value


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
    def from_environment(cls, env: Mapping[str, str], needs_channel: bool = True) -> "StepContext":
        ctx = cls(**{item.name: _read(env, PREFIX + item.name.upper()) if item.name != "channel" or needs_channel else ""
                     for item in fields(cls)})
        if needs_channel and ctx.channel not in _CHANNELS:
            raise ContextError(f"environment variable {PREFIX}CHANNEL is {ctx.channel!r}; expected one of {', '.join(_CHANNELS)}")
        return ctx


@dataclass(frozen=True)
class Options:
    """Migration options (`gke-mesh:migration`), as steps see them."""

    stack: str = "organization/gke-mesh/stack"
    """The stack's identity, <org>/<project>/<stack>: a second project's `prod` is another stack."""
    backup_uri: str = "backups"
    relax_security: bool = True
    remove_authorization_policies: bool = False
    restart_workloads: bool = True
    purge_crds: bool = True
    wait_timeout_seconds: int = 1800
    allow_local_backup: bool = False
    accept_traffic_director: bool = False
    reregister_membership: bool = True
    accept_membership_features: str = "none"
    """Comma-separated fleet features bound to the membership that re-registration may drop
    ("none": an environment value is never empty)."""

    def accepted_features(self) -> set[str]:
        return {f for f in self.accept_membership_features.split(",") if f and f != "none"}

    def environment(self, names: tuple[str, ...]) -> dict[str, str]:
        """Only the options `names`, as environment variables."""
        values = asdict(self)
        return {PREFIX + name.upper(): _text(values[name]) for name in sorted(names)}

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "Options":
        values: dict[str, Any] = {}
        for item in fields(cls):
            key = PREFIX + item.name.upper()
            if key not in env:
                continue
            raw = _read(env, key)
            if isinstance(item.default, bool):
                if raw not in ("true", "false"):
                    raise ContextError(f"environment variable {key} is {raw!r}; expected true or false")
                values[item.name] = raw == "true"
            elif isinstance(item.default, int):
                if not raw.isdigit():
                    raise ContextError(f"environment variable {key} is {raw!r}; expected whole seconds")
                values[item.name] = int(raw)
            else:
                values[item.name] = raw
        return cls(**values)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Decision:
    """What preflight decided, carried to every later step through Pulumi state."""

    action: str  # "migrate" or "skip"
    reason: str
    from_channel: str
    to_channel: str
    from_revision: str
    to_revision: str
    membership: str
    implementation: str
    run_id: str
    control_plane_state: str = "UNKNOWN"
    stack: str = ""
    resumed: bool = False
    """True when preflight found this stack's record in flight and carries on with its run."""
    backup: dict | None = None
    """The recorded backup reference (location, manifest_sha256) when resuming after it was taken."""
    project_number: str = ""
    """The cluster project's number, resolved once: membership links are matched exactly."""
    fleet_project_number: str = ""
    """The fleet host project's number (its service agents are named after it)."""
    attempt: str = ""
    """New each time preflight runs (a resumed run keeps its run id, not its attempt): in every
    later step's triggers, so each preflight run makes every later step run again."""

    @property
    def migrate(self) -> bool:
        return self.action == "migrate"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Decision":
        try:
            data = json.loads(text)
            decision = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (ValueError, TypeError, KeyError) as error:
            raise ContextError(f"{DECISION_KEY} is not a preflight decision ({error.__class__.__name__}); re-run `pulumi up`") from None
        if decision.action not in ("migrate", "skip"):
            raise ContextError(f"{DECISION_KEY} has action {decision.action!r}; expected migrate or skip")
        return decision

    @classmethod
    def placeholder(cls, ctx: StepContext) -> "Decision":
        """Stands for the runtime decision in the offline plan."""
        return cls(action="migrate", reason="<decided at run time>", from_channel="<from-channel>",
                   to_channel=ctx.channel, from_revision="<from-revision>", to_revision=revision_of(ctx.channel),
                   membership=ctx.membership, implementation="<implementation>", run_id="<run-id>")


def guard_id_of(guard_json: str | None) -> str:
    """The id in the guard's stdout ("" for a guard created before guards had ids)."""
    try:
        value = json.loads(guard_json or "").get("guard_id", "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return value if isinstance(value, str) and _SAFE_VALUE.fullmatch(value) else ""


def legacy_guard_of(guard_json: str | None) -> bool:
    """Whether the guard's stdout is an earlier gke-mesh's that claimed the cluster ({"guarded": true}, no id)."""
    try:
        result = json.loads(guard_json or "")
    except (ValueError, TypeError):
        return False
    return isinstance(result, dict) and result.get("guarded") is True and "guard_id" not in result


def attempt_of(decision_json: str | None) -> str:
    """The attempt in preflight's stdout ("" when it is not a decision)."""
    try:
        return str(json.loads(decision_json or "").get("attempt", ""))
    except (ValueError, AttributeError):
        return ""


def revision_of(channel: str) -> str:
    """Managed revision (and ControlPlaneRevision) name of a channel."""
    return "asm-managed" if channel in ("regular", "", "unspecified") else f"asm-managed-{channel}"


def channel_of_revision(revision: str) -> str | None:
    """Inverse of `revision_of` for managed revisions; None for anything else."""
    if revision == "asm-managed":
        return "regular"
    suffix = revision.removeprefix("asm-managed-")
    return suffix if revision.startswith("asm-managed-") and suffix in _CHANNELS else None


@dataclass(frozen=True)
class StepInput:
    """Everything a step reads from its environment."""

    ctx: StepContext
    options: Options = field(default_factory=Options)
    decision: Decision | None = None
    backup_from: dict | None = None
    """The producing step's result: {"backup": {location, manifest_sha256}, ...} or a skip."""
    process_env: Mapping[str, str] = field(default_factory=dict)
    """The rest of the step's environment (CI markers), read by checks that depend on where it runs."""
    key: StackKey | None = None
    """The stack's key (meshops.cluster.trust), for every step that reads or writes the record."""
    guard_id: str = ""
    """The guard resource's id (preflight claims the cluster for it; the guard's delete releases its own claim only)."""
    legacy_guard: bool = False
    """The guard was created by a gke-mesh before signed claims and claimed the cluster then
    (its stored result says so): only such a stack may take an unsigned claim of its bare name as its own."""

    @property
    def stack_key(self) -> StackKey:
        if self.key is None:
            raise ContextError(f"environment variable {KEY_ENV} is missing; run steps through `pulumi up`")
        return self.key

    @classmethod
    def from_environment(cls, env: Mapping[str, str], needs_decision: bool, needs_backup: bool = False,
                         needs_channel: bool = True, needs_key: bool = True) -> "StepInput":
        decision = backup_from = key = None
        if needs_decision:
            text = env.get(DECISION_KEY, "")
            if not text:
                raise ContextError(f"environment variable {DECISION_KEY} is missing; run steps through `pulumi up`")
            decision = Decision.from_json(text)
        if needs_backup:
            try:
                backup_from = json.loads(env.get(BACKUP_KEY, ""))
            except ValueError:
                raise ContextError(f"environment variable {BACKUP_KEY} is missing or not JSON; run steps through `pulumi up`") from None
            if not isinstance(backup_from, dict):
                raise ContextError(f"environment variable {BACKUP_KEY} is not a step result; run steps through `pulumi up`")
        markers = {k: env[k] for k in ("CI", "GITHUB_ACTIONS") if k in env}
        options = Options.from_environment(env)
        if needs_key:
            # The decision in state names the stack for every step after preflight (which
            # reads no stack option); preflight and the guard read it from their options.
            stack = decision.stack if decision is not None and decision.stack else options.stack
            try:
                key = StackKey.from_environment(env, stack)
            except MissingKey as error:
                raise ContextError(str(error)) from None
        guard_id, legacy_guard = "", False
        if GUARD_KEY in env:
            guard_id, legacy_guard = guard_id_of(env[GUARD_KEY]), legacy_guard_of(env[GUARD_KEY])
        return cls(StepContext.from_environment(env, needs_channel), options, decision, backup_from, markers, key, guard_id,
                   legacy_guard)

    def backup_folder(self) -> str:
        """This stack's backups of this cluster: <backupUri>/<org>/<project>/<stack>/<cluster>."""
        return f"{self.options.backup_uri.rstrip('/')}/{self.options.stack}/{self.ctx.cluster}"

    def new_backup_location(self) -> str:
        """Where a new backup of this run goes: <backup folder>/<from>-to-<to>/<run-id>.
        Only the backup step uses it; every later step reads the location from state."""
        decision = self.decision or Decision.placeholder(self.ctx)
        return f"{self.backup_folder()}/{decision.from_channel}-to-{decision.to_channel}/{decision.run_id}"


_LAUNCHER = "python3 -m meshops "


def command_line(step: str) -> str:
    """The `create` text of a command resource running `step`. Fixed text, no values:
    it is the same on every machine and a shell has nothing to interpret in it."""
    return _LAUNCHER + step


def step_of(command_text: str) -> str | None:
    """The step a command resource's `create` text runs, or None for other commands."""
    return command_text[len(_LAUNCHER):] if command_text.startswith(_LAUNCHER) else None
