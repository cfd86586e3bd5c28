"""The migration record: the one durable account of a migration in flight.

It lives in the cluster (ConfigMap `kube-system/gke-mesh-migration`), outside every
resource a channel change replaces, and a copy sits beside the backup (`record.json`).
It names the stack and run that own the migration, from/to, the backup (location and the
sha256 of its manifest) and the phase reached. Preflight finds it and resumes with *its*
backup; a record of another stack makes preflight refuse; verify deletes it once the
cluster is proved equal to the backup. See docs/architecture.md, "The migration record".

Concurrency: the record is created with `kubectl create` (fails if one exists: two stacks
cannot both start) and changed with `kubectl replace` carrying the resourceVersion read
(a concurrent change makes the replace fail instead of being overwritten).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from meshops.cluster.kube import Kube
from meshops.cluster.objects import canonical
from meshops.cluster.process import Runner, StepFailed, run_json

NAME = "gke-mesh-migration"
NAMESPACE = "kube-system"
PHASES = ("planned", "backed-up", "relaxed", "manual", "uninjected", "purging", "purged", "channel-set",
          "registered", "automatic", "ready", "restored", "reinjected", "verified")
UNTOUCHED = ("planned", "backed-up")
"""Phases in which nothing of the cluster has been changed yet."""


@dataclass(frozen=True)
class BackupRef:
    """Where a verified backup is, and the sha256 of its manifest: a backup whose manifest
    differs is refused, so whoever can write the bucket cannot swap it."""

    location: str
    manifest_sha256: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "BackupRef":
        if not isinstance(data, dict) or not data.get("location") or not data.get("manifest_sha256"):
            raise StepFailed("the backup reference in state is malformed; re-run `pulumi up`")
        return cls(str(data["location"]), str(data["manifest_sha256"]))


@dataclass(frozen=True)
class MigrationRecord:
    stack: str
    run_id: str
    cluster: str
    from_channel: str
    to_channel: str
    from_revision: str
    membership: str
    phase: str = "planned"
    backup: BackupRef | None = None
    earlier_backups: tuple[BackupRef, ...] = ()
    """Backups this run replaced by a supplementary one (drift found before a change)."""
    removed_policies: tuple[str, ...] = ()
    """namespace/name of the AuthorizationPolicies relax-security deleted (written before it did)."""
    restore_verified: bool = False
    """restore put every object back and checked its digest (cleared when a purge starts)."""
    registration: str = ""
    """How the membership was registered, read before reregister changed it: "gke" (the
    cluster's own `fleet` block names it) or "membership" (`memberships register`)."""
    membership_deleted: bool = False
    """reregister-membership deleted the membership and has not registered it again yet
    (written before the delete, cleared once registered): the only time a missing
    membership is this migration's doing."""
    resource_version: str = field(default="", compare=False)

    @property
    def touched(self) -> bool:
        """Whether the cluster may have been changed by this migration."""
        return self.phase not in UNTOUCHED

    def reached(self, phase: str) -> bool:
        """Phases are written ahead: a step records its phase before it changes anything,
        so a run stopped at any point never looks less advanced than it is."""
        return PHASES.index(self.phase) >= PHASES.index(phase)


    def to_json(self) -> str:
        data = asdict(self)
        data.pop("resource_version")
        data["backup"] = self.backup.to_dict() if self.backup else None
        data["earlier_backups"] = [b.to_dict() for b in self.earlier_backups]
        data["removed_policies"] = list(self.removed_policies)
        return canonical(data).decode()

    @classmethod
    def from_json(cls, text: str, resource_version: str = "") -> "MigrationRecord":
        try:
            data = json.loads(text)
            record = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in
                            ("backup", "earlier_backups", "removed_policies", "resource_version")},
                         backup=BackupRef.from_dict(data["backup"]) if data.get("backup") else None,
                         earlier_backups=tuple(BackupRef.from_dict(b) for b in data.get("earlier_backups") or []),
                         removed_policies=tuple(data.get("removed_policies") or ()),
                         resource_version=resource_version)
        except (ValueError, TypeError, KeyError, StepFailed):
            raise StepFailed(f"the migration record {NAMESPACE}/{NAME} is not readable; inspect it with "
                             f"`kubectl -n {NAMESPACE} get configmap {NAME} -o yaml`") from None
        if record.phase not in PHASES:
            raise StepFailed(f"the migration record {NAMESPACE}/{NAME} has an unknown phase {record.phase!r}")
        return record

    def describe(self) -> str:
        where = self.backup.location if self.backup else "no backup yet"
        return (f"stack {self.stack}, run {self.run_id}, {self.from_channel} -> {self.to_channel}, "
                f"phase {self.phase}, backup {where}")


def _document(record: MigrationRecord) -> dict:
    metadata: dict[str, Any] = {"name": NAME, "namespace": NAMESPACE,
                                "labels": {"app.kubernetes.io/managed-by": "gke-mesh"}}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"record": record.to_json()}}


def read(runner: Runner, kube: Kube) -> MigrationRecord | None:
    found = run_json(runner, kube.get_one("configmap", NAME, NAMESPACE))
    if not found:
        return None
    meta = found.get("metadata") or {}
    return MigrationRecord.from_json((found.get("data") or {}).get("record", ""), str(meta.get("resourceVersion", "")))


def create(runner: Runner, kube: Kube, record: MigrationRecord) -> MigrationRecord:
    """Start a migration; fails if any record exists (another stack or run got there first)."""
    try:
        created = run_json(runner, kube.create(), input=json.dumps(_document(record)))
    except StepFailed as error:
        if "AlreadyExists" in str(error) or "already exists" in str(error):
            raise StepFailed(f"cluster {record.cluster}: another migration started at the same time "
                             f"({NAMESPACE}/{NAME} appeared); re-run `pulumi up` to see whose it is") from None
        raise
    return replace(record, resource_version=str(((created or {}).get("metadata") or {}).get("resourceVersion", "")))


def owned(runner: Runner, kube: Kube, stack: str, run_id: str, cluster: str) -> MigrationRecord:
    """This run's record, or a refusal: never act on a migration the record does not name."""
    record = read(runner, kube)
    if record is None:
        raise StepFailed(f"cluster {cluster}: no migration record ({NAMESPACE}/{NAME}) although run {run_id} is in progress; "
                         "someone removed it: check `python -m meshops status` before going on")
    if (record.stack, record.run_id) != (stack, run_id):
        raise StepFailed(f"cluster {cluster}: the migration record belongs to {record.describe()}, not to stack {stack} "
                         f"run {run_id}; two migrations must never run on one cluster")
    return record


def advance(runner: Runner, kube: Kube, record: MigrationRecord, phase: str, **changes: Any) -> MigrationRecord:
    """Move the record forward to `phase` (never back: a replayed step does not rewind it)."""
    if PHASES.index(phase) < PHASES.index(record.phase):
        phase = record.phase
    updated = replace(record, phase=phase, **changes)
    if updated == record:
        return record
    try:
        written = run_json(runner, kube.replace(), input=json.dumps(_document(updated)))
    except StepFailed as error:
        if "Conflict" in str(error) or "has been modified" in str(error):
            raise StepFailed(f"cluster {record.cluster}: the migration record changed under this step (another run?); "
                             "re-run `pulumi up`") from None
        raise
    return replace(updated, resource_version=str(((written or {}).get("metadata") or {}).get("resourceVersion", "")))


def clear(runner: Runner, kube: Kube) -> None:
    runner(kube.delete("configmap", [NAME], NAMESPACE))


OWNER = "gke-mesh-owner"
"""ConfigMap kube-system/gke-mesh-owner: the one stack that manages this cluster's mesh
channel. Claimed by the cluster's guard when the stack first takes the cluster, released
when the guard is deleted; another stack's preflight and guard refuse while it is held."""


def owner(runner: Runner, kube: Kube) -> str | None:
    found = run_json(runner, kube.get_one("configmap", OWNER, NAMESPACE))
    return str((found.get("data") or {}).get("stack", "")) if found else None


def claim(runner: Runner, kube: Kube, stack: str, cluster: str) -> None:
    """Make `stack` the owner, or refuse when another stack is."""
    held = owner(runner, kube)
    if held == stack:
        return
    if held is None:
        document = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"stack": stack},
                    "metadata": {"name": OWNER, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "gke-mesh"}}}
        try:
            runner(kube.create(), input=json.dumps(document))
            return
        except StepFailed as error:
            if "AlreadyExists" not in str(error):
                raise
        held = owner(runner, kube)
        if held == stack:
            return
    raise StepFailed(owned_elsewhere(cluster, str(held), stack))


def owned_elsewhere(cluster: str, held: str, stack: str) -> str:
    return (f"cluster {cluster} is managed by stack {held} (kube-system/{OWNER}); one cluster belongs to one stack: remove it "
            f"from {held} first (its guard releases it), or from stack {stack}")


def release(runner: Runner, kube: Kube, stack: str) -> None:
    if owner(runner, kube) == stack:
        runner(kube.delete("configmap", [OWNER], NAMESPACE))
