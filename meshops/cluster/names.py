"""Syntax checks for every value read from a cluster, the fleet or a backup before it
becomes an argv element.

Cluster objects, fleet answers, records and backups can be written by others; a value that
starts with `-` and reached kubectl or gcloud as a separate element would be parsed as a
flag (`--server=...` sends the deploying identity's token elsewhere). Every such value must
match the syntax Kubernetes or GKE Hub itself enforces, and none of those syntaxes lets a
value start with `-`. The rules are Kubernetes' ("Object Names and IDs": DNS-1123 label and
subdomain; "Labels and Selectors": label keys and values; the same regular expressions as
k8s.io/apimachinery/pkg/util/validation) and GKE Hub's membership ids (RFC 1123 labels,
`gcloud container fleet memberships register` help).
"""

from __future__ import annotations

import re

from meshops.cluster.process import StepFailed

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(_LABEL)
DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")
PLACEHOLDER = re.compile(r"<[a-z0-9-]+>(/<[a-z0-9-]+>)?")
"""What the offline plan shows where a run-time value goes (`<namespace>`)."""


def _refuse(what: str, value: object, rule: str) -> StepFailed:
    shown = repr(value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "...")
    return StepFailed(f"refusing to use {what} {shown} read from the cluster, the fleet or a backup: it is not {rule}; "
                      "someone wrote a value no Kubernetes or GKE Hub API accepts: inspect it before re-running")


def _length_ok(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit


def namespace(value: object) -> str:
    if not isinstance(value, str) or not _length_ok(value, 63) or not DNS_LABEL.fullmatch(value):
        raise _refuse("namespace", value, "a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)")
    return value


def object_name(value: object) -> str:
    if not isinstance(value, str) or not _length_ok(value, 253) or not DNS_SUBDOMAIN.fullmatch(value):
        raise _refuse("object name", value, "a DNS-1123 subdomain (a-z, 0-9, '-', '.', at most 253 characters)")
    return value


def resource(value: object) -> str:
    """A resource type as kubectl takes it: `plural` or `plural.group` (comma lists too)."""
    parts = value.split(",") if isinstance(value, str) else [value]
    for part in parts:
        if not isinstance(part, str) or not _length_ok(part, 253) or not DNS_SUBDOMAIN.fullmatch(part):
            raise _refuse("resource type", value, "plural.group of lower-case DNS labels")
    return value  # type: ignore[return-value]


def label_key(value: object) -> str:
    if not isinstance(value, str):
        raise _refuse("label key", value, "a string")
    prefix, _, name = value.rpartition("/")
    if prefix and (not _length_ok(prefix, 253) or not DNS_SUBDOMAIN.fullmatch(prefix)):
        raise _refuse("label key", value, "prefix/name with a DNS-1123 subdomain prefix")
    if not _length_ok(name, 63) or not _QUALIFIED_NAME.fullmatch(name):
        raise _refuse("label key", value, "a qualified name (alphanumerics, '-', '_', '.', starting and ending alphanumeric, "
                                          "at most 63 characters)")
    return value


def label_value(value: object) -> str:
    if not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED_NAME.fullmatch(value)):
        raise _refuse("label value", value, "empty or a qualified name of at most 63 characters")
    return value


def workload(value: object) -> str:
    """`kind/name` of a workload kubectl restarts or waits for."""
    kind, _, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if kind not in WORKLOAD_KINDS:
        raise _refuse("workload", value, f"kind/name with a kind of {', '.join(WORKLOAD_KINDS)}")
    object_name(name)
    return value  # type: ignore[return-value]


def membership(value: object) -> str:
    """A GKE Hub membership id (RFC 1123 label, at most 63 characters)."""
    if not isinstance(value, str) or not _length_ok(value, 63) or not DNS_LABEL.fullmatch(value):
        raise _refuse("membership", value, "an RFC 1123 label (a-z, 0-9, '-', at most 63 characters)")
    return value


def storage_url(value: object) -> str:
    """A gs:// object URL (optionally `#generation`) as gcloud storage takes it: never a flag,
    no whitespace or control characters."""
    if not isinstance(value, str) or not value.startswith("gs://") or len(value) > 2048 \
            or any(c.isspace() or ord(c) < 32 for c in value):
        raise _refuse("storage URL", value, "a gs:// URL without whitespace")
    return value
