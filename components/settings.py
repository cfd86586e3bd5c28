"""The one place the stack's config is read and validated.

`parse_settings` is pure: it takes the raw config map (full keys such as
``gke-mesh:releaseChannel`` mapped to what Pulumi hands the program: strings, with
objects and lists JSON-encoded) and returns frozen dataclasses, or raises
`ConfigError` with one line naming the key, the bad value and what is allowed.
`load_settings` feeds it the running program's config. Nothing is registered before
this succeeds, so a bad value never half-applies a stack.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import pulumi

from meshops.context import UNSUPPORTED

NAMESPACE = "gke-mesh"
CHANNELS = ("rapid", "regular", "stable")
MODES = ("adopt", "create")
FEATURE_MODES = ("adopt", "create")
REQUIRED_APIS = (
    "mesh.googleapis.com",
    "connectgateway.googleapis.com",
    "gkehub.googleapis.com",
    "container.googleapis.com",
)
# Deprecated; enabling it does nothing useful, and Cloud Service Mesh troubleshooting ("Resolving
# installation issues") says to remove it from the installation.
REFUSED_APIS = {"meshtelemetry.googleapis.com": "it is deprecated and must not be enabled"}

_REFUSED_CHANNELS = {
    "extended": "managed Cloud Service Mesh has no extended channel",
    "unspecified": "a cluster without a channel gets the regular mesh channel; say regular",
    "none": "a cluster without a channel gets the regular mesh channel; say regular",
}

_PROJECT_RE = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_CLUSTER_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?")
_MEMBERSHIP_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_REGION_RE = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}")
_ZONE_RE = re.compile(r"([a-z]+-[a-z]+[0-9]{1,2})-[a-z]")
_API_RE = re.compile(r"[a-z][a-z0-9-]{0,62}\.googleapis\.com")
_NAMESPACE_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MACHINE_TYPE_RE = re.compile(r"[a-z][a-z0-9-]{1,62}")
_BUCKET_URI_RE = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](?:/[A-Za-z0-9._-]+)*/?")
_RELATIVE_PATH_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*(?:/[A-Za-z0-9._-]+)*/?")
_STACK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_DURATION_RE = re.compile(r"([0-9]{1,6})(s|m|h)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
_MIN_WAIT, _MAX_WAIT = 60, 4 * 3600

PROJECT_RULE = "6-30 characters: lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen"
CLUSTER_RULE = "1-40 characters: lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen"
MEMBERSHIP_RULE = "1-63 characters: lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen"
LOCATION_RULE = "a region such as asia-northeast1 or a zone such as asia-northeast1-a"


class ConfigError(pulumi.RunError):
    """A config value is wrong. The message is one line naming key, value and rule.

    Subclassing `pulumi.RunError` makes `pulumi up` print the message without a traceback.
    """


@dataclass(frozen=True)
class Migration:
    """Options of the channel migration chain (`gke-mesh:migration`)."""

    enabled: bool = True
    backup_uri: str = "backups"
    relax_security: bool = True
    remove_authorization_policies: bool = False
    restart_workloads: bool = True
    reregister_membership: bool = True
    purge_crds: bool = True
    wait_timeout_seconds: int = 1800
    max_parallel: int = 1
    """At most this many clusters of the stack migrate at once (blast radius: one by default)."""
    allow_local_backup: bool = False
    """Accept a local backupUri on a CI runner (whose disk, and backup, go with the job)."""
    accept_membership_features: tuple[str, ...] = ()
    """Fleet features (other than servicemesh) bound to the membership that re-registration
    may drop, acknowledged by name (their per-membership specs are saved elsewhere)."""
    accept_traffic_director: bool = False
    """Migrate an ISTIOD cluster that holds kinds TRAFFIC_DIRECTOR ignores (EnvoyFilter,
    WasmPlugin, IstioOperator): re-provisioning may switch the implementation."""
    rerun: str = ""
    """Any new value runs every step of the chain again (it is in each step's `triggers`);
    preflight then resumes an in-flight migration or skips an aligned cluster."""
    acknowledge_unsupported: bool = False
    """The stack accepts that Google does not support the in-place channel change (required
    outside dev-like stacks: UNSUPPORTED)."""


DEV_LIKE_STACK = re.compile(r"^(dev|test)\b", re.IGNORECASE)
"""Stacks that may migrate without the acknowledgement (the policy pack's devStackPattern default)."""


@dataclass(frozen=True)
class Promotion:
    """`gke-mesh:promotion`: the stage this stack follows, and the deliberate override."""

    after: str | None = None
    force: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Cluster:
    """One GKE cluster whose mesh channel the stack manages."""

    name: str
    location: str
    project: str
    membership: str
    membership_location: str
    mode: str = "adopt"
    mesh_namespaces: tuple[str, ...] = ()
    node_machine_type: str = "e2-standard-4"
    node_count: int = 1
    release_channel: str = "regular"
    """This cluster's target: its own `releaseChannel`, else the stack's."""
    migration: Migration = field(default_factory=Migration)
    """The stack's migration options with this cluster's overrides applied."""


@dataclass(frozen=True)
class Settings:
    """Everything the program needs, validated."""

    project: str
    release_channel: str
    clusters: tuple[Cluster, ...]
    apis: tuple[str, ...] = REQUIRED_APIS
    mesh_feature: str = "adopt"
    migration: Migration = field(default_factory=Migration)
    promotion: Promotion = field(default_factory=Promotion)
    stack: str = "stack"

    @property
    def projects(self) -> tuple[str, ...]:
        """The fleet host project first, then every other cluster project, each once."""
        seen = dict.fromkeys([self.project, *(c.project for c in self.clusters)])
        return tuple(seen)


# --------------------------------------------------------------------------- helpers


def show(value: Any, limit: int = 60) -> str:
    """Render a bad value for an error message: always one line, never huge."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value).encode("ascii", "backslashreplace").decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def suggest(key: str, known: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for the nearest known key, or '' when nothing is close."""
    lowered = {k.lower(): k for k in known}
    if key.lower() in lowered:
        return f" (did you mean {lowered[key.lower()]}?)"
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}: {show(value)} is not allowed; expected {allowed}")


def _string(key: str, value: Any, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string ({rule}), got {_type_name(value)} {show(value)}")
    if not pattern.fullmatch(value):
        raise _fail(key, value, rule)
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_type_name(value)} {show(value)}")
    return value


def _decode(key: str, value: Any) -> Any:
    """Pulumi hands objects and lists to the program as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(f"{key}: {show(value)} is not valid structured config; write it as YAML list/object in the stack file") from None
    return value


def _object(key: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object with keys {', '.join(known)}, got {_type_name(value)} {show(value)}")
    for name in value:
        if name not in known:
            raise ConfigError(f"{key}.{show(name, 40).strip(chr(34))}: unknown key{suggest(str(name), known)}; allowed keys: {', '.join(known)}")
    return value


def region_of(location: str) -> str:
    """asia-northeast1-a -> asia-northeast1; a region is returned unchanged."""
    zone = _ZONE_RE.fullmatch(location)
    return zone.group(1) if zone else location


# --------------------------------------------------------------------------- fields


def parse_channel(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected one of {', '.join(CHANNELS)}, got {_type_name(value)} {show(value)}")
    channel = value.strip().lower()
    if channel in CHANNELS:
        return channel
    reason = _REFUSED_CHANNELS.get(channel)
    if reason:
        raise ConfigError(f"{key}: {show(value)} is not allowed ({reason}); expected one of {', '.join(CHANNELS)}")
    raise _fail(key, value, "one of " + ", ".join(CHANNELS) + " (case-insensitive)")


def parse_location(key: str, value: Any) -> str:
    location = _string(key, value, re.compile(f"{_REGION_RE.pattern}|{_ZONE_RE.pattern}"), LOCATION_RULE)
    return location


def _membership_location(key: str, value: Any) -> str:
    if value == "global":
        return value
    return _string(key, value, _REGION_RE, "global or a region such as asia-northeast1 (not a zone)")


def _duration(key: str, value: Any) -> int:
    rule = f"a duration such as 30m, 90s or 1h, or whole seconds, between {_MIN_WAIT // 60}m and {_MAX_WAIT // 3600}h"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{key}: expected {rule}, got {_type_name(value)} {show(value)}")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION_RE.fullmatch(value)
        if not match:
            raise _fail(key, value, rule)
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not _MIN_WAIT <= seconds <= _MAX_WAIT:
        raise _fail(key, value, rule)
    return seconds


_RERUN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_RERUN_RULE = "1-63 letters, digits, '.', '_' or '-' (e.g. a date: 2026-11-26)"


def _backup_uri(key: str, value: Any) -> str:
    rule = "a gs://bucket/prefix URI or a relative folder of letters, digits, '.', '_', '-' and '/' (no '..'), at most 200 characters"
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected {rule}, got {_type_name(value)} {show(value)}")
    if len(value) > 200:
        raise _fail(key, value, rule)
    if value.startswith("gs://"):
        return _string(key, value, _BUCKET_URI_RE, rule)
    if value.startswith("/"):
        raise ConfigError(f"{key}: {show(value)} is an absolute path; use a folder relative to the project so step inputs match on every machine, or a gs:// URI")
    _string(key, value, _RELATIVE_PATH_RE, rule)
    if ".." in value.split("/"):
        raise _fail(key, value, rule)
    return value.rstrip("/")


_MIGRATION_KEYS = {
    "enabled": ("enabled", _boolean),
    "backupUri": ("backup_uri", _backup_uri),
    "relaxSecurity": ("relax_security", _boolean),
    "removeAuthorizationPolicies": ("remove_authorization_policies", _boolean),
    "restartWorkloads": ("restart_workloads", _boolean),
    "reregisterMembership": ("reregister_membership", _boolean),
    "purgeCrds": ("purge_crds", _boolean),
    "waitTimeout": ("wait_timeout_seconds", _duration),
    "maxParallel": ("max_parallel", lambda key, value: _whole(key, value, 1, 1000)),
    "allowLocalBackup": ("allow_local_backup", _boolean),
    "acceptTrafficDirector": ("accept_traffic_director", _boolean),
    "acceptMembershipFeatures": ("accept_membership_features", lambda key, value: _feature_names(key, value)),
    "rerun": ("rerun", lambda key, value: _string(key, value, _RERUN_RE, _RERUN_RULE)),
    "acknowledgeUnsupported": ("acknowledge_unsupported", _boolean),
}


_FEATURE_RE = re.compile(r"[a-z][a-z0-9]{1,40}")


def _feature_names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _FEATURE_RE.fullmatch(v) for v in value):
        raise ConfigError(f"{key}: expected a list of fleet feature names such as [configmanagement, policycontroller], "
                          f"got {show(value)}")
    return tuple(sorted(set(value)))


def _whole(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got {show(value)}")
    return value


def parse_migration(key: str, value: Any, base: Migration | None = None) -> Migration:
    """The stack's migration options, or (with `base`) one cluster's overrides of them."""
    known = tuple(k for k in _MIGRATION_KEYS if base is None or k != "maxParallel")
    raw = _object(key, _decode(key, value), known)
    values = {attr: parse(f"{key}.{name}", raw[name]) for name, (attr, parse) in _MIGRATION_KEYS.items() if name in raw}
    return replace(base, **values) if base is not None else Migration(**values)


def parse_apis(key: str, value: Any) -> tuple[str, ...]:
    raw = _decode(key, value)
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: expected a list of service names such as monitoring.googleapis.com, got {_type_name(raw)} {show(raw)}")
    extras: list[str] = []
    for index, item in enumerate(raw):
        item_key = f"{key}[{index}]"
        api = _string(item_key, item, _API_RE, "a service name such as monitoring.googleapis.com")
        if api in REFUSED_APIS:
            raise ConfigError(f"{item_key}: {show(api)} is not allowed: {REFUSED_APIS[api]}")
        if api in REQUIRED_APIS:
            raise ConfigError(f"{item_key}: {show(api)} is always enabled; list only extra APIs")
        if api in extras:
            raise ConfigError(f"{item_key}: {show(api)} is listed twice")
        extras.append(api)
    return REQUIRED_APIS + tuple(extras)


def _namespaces(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of namespace names, got {_type_name(value)} {show(value)}")
    names: list[str] = []
    for index, item in enumerate(value):
        name = _string(f"{key}[{index}]", item, _NAMESPACE_RE, "a Kubernetes namespace name (lowercase letters, digits, hyphens; at most 63)")
        if name in ("istio-system", "asm-system", "kube-system"):
            raise ConfigError(f"{key}[{index}]: {show(name)} is a system namespace and is never injected")
        if name in names:
            raise ConfigError(f"{key}[{index}]: {show(name)} is listed twice")
        names.append(name)
    return tuple(names)


def _node_count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ConfigError(f"{key}: expected a whole number from 1 to 100, got {show(value)}")
    return value


_CLUSTER_KEYS = ("name", "location", "project", "membership", "membershipLocation", "mode",
                 "meshNamespaces", "nodeMachineType", "nodeCount", "releaseChannel", "migration")
_CREATE_ONLY_KEYS = ("nodeMachineType", "nodeCount")


def parse_cluster(key: str, value: Any, fleet_project: str, channel: str = "regular",
                  migration: Migration | None = None) -> Cluster:
    raw = _object(key, value, _CLUSTER_KEYS)
    for required in ("name", "location"):
        if required not in raw:
            raise ConfigError(f"{key}.{required}: missing; every cluster needs name and location")
    name = _string(f"{key}.name", raw["name"], _CLUSTER_RE, CLUSTER_RULE)
    location = parse_location(f"{key}.location", raw["location"])
    mode = raw.get("mode", "adopt")
    if mode not in MODES:
        raise _fail(f"{key}.mode", mode, "adopt (an existing cluster) or create (the program owns it)")
    if mode == "adopt":
        for create_only in _CREATE_ONLY_KEYS:
            if create_only in raw:
                raise ConfigError(f"{key}.{create_only}: only applies with mode: create; an adopted cluster's node pools are not managed here")
    else:
        # GKE names the membership after the cluster and puts it in the cluster's region.
        if raw.get("membership", name) != name:
            raise ConfigError(f"{key}.membership: {show(raw['membership'])} cannot differ from the cluster name with mode: create (GKE registers it as {name})")
        if raw.get("membershipLocation", region_of(location)) != region_of(location):
            raise ConfigError(f"{key}.membershipLocation: {show(raw['membershipLocation'])} must be the cluster's region {region_of(location)} with mode: create")
    extra: dict[str, Any] = {}
    if "nodeMachineType" in raw:
        extra["node_machine_type"] = _string(f"{key}.nodeMachineType", raw["nodeMachineType"], _MACHINE_TYPE_RE, "a machine type such as e2-standard-4")
    if "nodeCount" in raw:
        extra["node_count"] = _node_count(f"{key}.nodeCount", raw["nodeCount"])
    return Cluster(
        name=name,
        location=location,
        project=_string(f"{key}.project", raw.get("project", fleet_project), _PROJECT_RE, PROJECT_RULE),
        membership=_string(f"{key}.membership", raw.get("membership", name), _MEMBERSHIP_RE, MEMBERSHIP_RULE),
        membership_location=_membership_location(f"{key}.membershipLocation", raw.get("membershipLocation", region_of(location))),
        mode=mode,
        mesh_namespaces=_namespaces(f"{key}.meshNamespaces", raw.get("meshNamespaces", [])),
        release_channel=parse_channel(f"{key}.releaseChannel", raw["releaseChannel"]) if "releaseChannel" in raw else channel,
        migration=parse_migration(f"{key}.migration", raw.get("migration", {}), migration or Migration()),
        **extra,
    )


def parse_clusters(key: str, value: Any, fleet_project: str, channel: str = "regular",
                   migration: Migration | None = None) -> tuple[Cluster, ...]:
    raw = _decode(key, value)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key}: expected a non-empty list of clusters ({{name, location, ...}}), got {show(raw)}")
    clusters: list[Cluster] = []
    for index, item in enumerate(raw):
        cluster = parse_cluster(f"{key}[{index}]", item, fleet_project, channel, migration)
        for other in clusters:
            if other.name == cluster.name:
                raise ConfigError(f"{key}[{index}].name: {show(cluster.name)} is listed twice; cluster names must be unique in a stack")
            if (other.membership, other.membership_location) == (cluster.membership, cluster.membership_location):
                raise ConfigError(f"{key}[{index}].membership: {show(cluster.membership)} in {cluster.membership_location} is already used by cluster {other.name}")
        clusters.append(cluster)
    return tuple(clusters)


# --------------------------------------------------------------------------- top level


_STACK_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def parse_promotion(key: str, value: Any) -> Promotion:
    raw = _object(key, _decode(key, value), ("after", "force", "reason"))
    after = raw.get("after")
    if after is not None:
        _string(f"{key}.after", after, _STACK_REF_RE, "a stack reference <org>/<project>/<stack>, e.g. organization/gke-mesh/dev")
    force = _boolean(f"{key}.force", raw["force"]) if "force" in raw else False
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500 or not reason.isprintable():
        raise ConfigError(f"{key}.reason: expected one printable line of at most 500 characters, got {show(reason)}")
    if force and not reason.strip():
        raise ConfigError(f"{key}.force: true needs a reason: add {key}.reason saying why the gate is overridden")
    if force and after is None:
        raise ConfigError(f"{key}.force: there is no gate to override without {key}.after")
    return Promotion(after=after, force=force, reason=reason.strip())


TOP_KEYS = ("releaseChannel", "clusters", "apis", "meshFeature", "migration", "promotion")
KNOWN_KEYS = tuple(f"{NAMESPACE}:{k}" for k in TOP_KEYS)


def parse_stack(value: Any) -> str:
    """The stack name names backup folders, so it must be a plain path segment."""
    if not isinstance(value, str) or not _STACK_RE.fullmatch(value) or ".." in value:
        raise ConfigError(f"stack name: {show(value)} is not allowed; expected 1-100 letters, digits, '_', '.', '-', "
                          "starting with a letter or digit, without '..'")
    return value


def parse_settings(raw: Mapping[str, Any], stack: str = "stack") -> Settings:
    """Validate the whole config map; raise `ConfigError` at the first bad value."""
    stack = parse_stack(stack)
    for full_key in raw:
        if full_key.startswith(NAMESPACE + ":") and full_key not in KNOWN_KEYS:
            short = full_key.split(":", 1)[1]
            hint = suggest(short, TOP_KEYS)
            raise ConfigError(f"{show(full_key, 80).strip(chr(34))}: unknown key{hint.replace('did you mean ', f'did you mean {NAMESPACE}:')}; "
                              f"known keys: {', '.join(KNOWN_KEYS)}")
    if raw.get("gcp:project") in (None, ""):
        raise ConfigError("gcp:project: missing; set the fleet host project with `pulumi config set gcp:project PROJECT_ID`")
    project = _string("gcp:project", raw["gcp:project"], _PROJECT_RE, PROJECT_RULE)
    for required in ("releaseChannel", "clusters"):
        if raw.get(f"{NAMESPACE}:{required}") in (None, ""):
            raise ConfigError(f"{NAMESPACE}:{required}: missing; it is required (see Pulumi.yaml)")
    feature_mode = raw.get(f"{NAMESPACE}:meshFeature", "adopt")
    if feature_mode not in FEATURE_MODES:
        raise _fail(f"{NAMESPACE}:meshFeature", feature_mode, "adopt (import the fleet's existing servicemesh feature) or create")
    channel = parse_channel(f"{NAMESPACE}:releaseChannel", raw[f"{NAMESPACE}:releaseChannel"])
    migration = parse_migration(f"{NAMESPACE}:migration", raw.get(f"{NAMESPACE}:migration", "{}"))
    settings = Settings(
        project=project,
        release_channel=channel,
        clusters=parse_clusters(f"{NAMESPACE}:clusters", raw[f"{NAMESPACE}:clusters"], project, channel, migration),
        apis=parse_apis(f"{NAMESPACE}:apis", raw.get(f"{NAMESPACE}:apis", "[]")),
        mesh_feature=feature_mode,
        migration=migration,
        promotion=parse_promotion(f"{NAMESPACE}:promotion", raw.get(f"{NAMESPACE}:promotion", "{}")),
        stack=stack,
    )
    require_acknowledgement(settings)
    return settings


def require_acknowledgement(settings: Settings) -> None:
    """Outside dev-like stacks, the in-place chain runs only once the stack file says it accepts
    that Google does not support it: before anything is registered, in one line."""
    if DEV_LIKE_STACK.match(settings.stack):
        return
    unacknowledged = [c.name for c in settings.clusters if c.migration.enabled and not c.migration.acknowledge_unsupported]
    if unacknowledged:
        raise ConfigError(f"{NAMESPACE}:migration.acknowledgeUnsupported: stack {settings.stack} would migrate "
                          f"{', '.join(unacknowledged[:3])}{' …' if len(unacknowledged) > 3 else ''} in place. {UNSUPPORTED}. "
                          "Set acknowledgeUnsupported: true under gke-mesh:migration to accept it, or migration.enabled: false")


def running_config() -> dict[str, Any]:
    """The running program's whole config map (what `pulumi up` or the mocks set)."""
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def load_settings() -> Settings:
    """Read and validate the running stack's config."""
    return parse_settings(running_config(), pulumi.get_stack())
