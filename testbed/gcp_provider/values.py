"""Pulumi property values on the wire (google.protobuf.Struct) and back.

The engine encodes values it cannot put in plain JSON with "signature" objects
(pulumi/sdk/go/common/resource/plugin/rpc.go and pulumi.runtime.rpc in the Python SDK):
  - an unknown value (preview) is the string UNKNOWN;
  - a secret is {SIG: SECRET_SIG, "value": <value>};
  - a resource reference is {SIG: RESOURCE_SIG, "urn": ..., "id": ...}.
This provider answers acceptSecrets/acceptResources, so it receives those objects and must
keep them: outputs built from inputs keep a secret's wrapper (the engine does not re-mark
them for a provider that accepts secrets), and the REST calls see the plain value.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def from_struct(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    """A Struct as a dict (numbers come back as float: the Struct has no ints)."""
    if struct is None:
        return {}
    return json_format.MessageToDict(struct)


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def is_unknown(value: Any) -> bool:
    return value == UNKNOWN


def has_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def plain(value: Any) -> Any:
    """The value with every secret unwrapped and resource references turned into their id
    (or urn): what goes into a REST body or a comparison."""
    if is_secret(value):
        return plain(value.get("value"))
    if isinstance(value, dict) and value.get(SIG) == RESOURCE_SIG:
        return plain(value.get("id") or value.get("urn"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def empty(value: Any) -> bool:
    """Absent, null, "" or an empty map/list: the bridged provider treats these alike for an
    optional input (an unset Terraform attribute), so a diff must not see a change."""
    return value is None or value == "" or value == {} or value == []


def same(old: Any, new: Any) -> bool:
    """Equal as input values: secrets unwrapped, empty values alike, 1 == 1.0."""
    old, new = plain(old), plain(new)
    if empty(old) and empty(new):
        return True
    if isinstance(old, dict) and isinstance(new, dict):
        return all(same(old.get(k), new.get(k)) for k in set(old) | set(new))
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new))
    return old == new
