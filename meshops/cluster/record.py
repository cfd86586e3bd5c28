"""The migration record and the owner claim: the durable, signed account of who manages a
cluster and of a migration in flight.

The record lives in the cluster (ConfigMap `kube-system/gke-mesh-migration`), outside
every resource a channel change replaces, and a copy sits beside the backup
(`record.json`). It names the stack and run that own the migration, the cluster, from/to,
the backup (location, sha256 of its manifest, pinned object generations) and the phase
reached. The owner claim (`kube-system/gke-mesh-owner`) names the one stack, and the guard
resource of that stack, that manages the cluster.

Both can be written by anyone with write access to kube-system, so both are signed with
the stack's key (meshops.cluster.trust) over their content and the cluster's identity: a
document whose signature does not verify is never acted on (a one-line refusal, before
anything changes). See docs/architecture.md, "The migration record", and README "Security".

Concurrency: the record is created with `kubectl create` (fails if one exists: two stacks
cannot both start) and changed with `kubectl replace` carrying the resourceVersion read
(a concurrent change makes the replace fail instead of being overwritten).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from meshops.cluster.kube import Kube
from meshops.cluster.objects import canonical
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.trust import StackKey
from meshops.context import StepContext

NAME = "gke-mesh-migration"
NAMESPACE = "kube-system"
OWNER = "gke-mesh-owner"
PHASES = ("planned", "backed-up", "relaxed", "manual", "uninjected", "purging", "purged", "channel-set",
          "registered", "automatic", "ready", "restored", "reinjected", "verified")
UNTOUCHED = ("planned", "backed-up")
"""Phases in which nothing of the cluster has been changed yet."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GENERATION = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class BackupRef:
    """Where a verified backup is, the sha256 of its manifest and, for gs://, the object
    generations written: a backup whose manifest differs is refused, and reading the pinned
    generations gets the genuine objects back even after someone overwrote them."""

    location: str
    manifest_sha256: str
    generations: tuple[tuple[str, str], ...] = ()
    """(file name, generation) of each object written, sorted; empty for a local backup."""

    def generation_of(self, name: str) -> str | None:
        return dict(self.generations).get(name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"location": self.location, "manifest_sha256": self.manifest_sha256}
        if self.generations:
            data["generations"] = dict(self.generations)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "BackupRef":
        if not isinstance(data, dict) or not isinstance(data.get("location"), str) or not data["location"] \
                or not _SHA256.fullmatch(str(data.get("manifest_sha256", ""))):
            raise StepFailed("a backup reference (in state or in the migration record) is malformed; re-run `pulumi up`")
        generations = data.get("generations") or {}
        if not isinstance(generations, dict) or not all(isinstance(k, str) and _GENERATION.fullmatch(str(v))
                                                        for k, v in generations.items()):
            raise StepFailed("a backup reference names malformed object generations; re-run `pulumi up`")
        return cls(data["location"], data["manifest_sha256"], tuple(sorted((k, str(v)) for k, v in generations.items())))


@dataclass(frozen=True)
class MigrationRecord:
    stack: str
    """The owning stack's identity, <org>/<project>/<stack>."""
    run_id: str
    cluster: str
    from_channel: str
    to_channel: str
    from_revision: str
    membership: str
    project: str = ""
    location: str = ""
    phase: str = "planned"
    backup: BackupRef | None = None
    earlier_backups: tuple[BackupRef, ...] = ()
    """Backups this run replaced by a supplementary one (drift found before a change)."""
    removed_policies: tuple[str, ...] = ()
    """namespace/name of the AuthorizationPolicies relax-security deleted (written before it did)."""
    uninjected: dict[str, dict[str, str]] = field(default_factory=dict)
    """namespace -> the injection labels uninject removed (written before it did): reinject and
    verify use these with the backup's, so a namespace onboarded after the backup gets its
    labels back."""
    relabelled_workloads: dict[str, str] = field(default_factory=dict)
    """namespace/kind/name -> the pod-template istio.io/rev label uninject took off (written
    before it did): reinject labels them for the new revision, verify checks them."""
    restore_verified: bool = False
    """restore put every object back and checked its digest (cleared when a purge starts)."""
    registration: str = ""
    """How the membership was registered, read before reregister changed it: "gke" (the
    cluster's own `fleet` block names it) or "membership" (`memberships register`)."""
    membership_deleted: bool = False
    """reregister-membership deleted the membership and has not registered it again yet
    (written before the delete, cleared once registered): the only time a missing
    membership is this migration's doing."""
    recovered: bool = False
    """Re-created from the signed copy beside the backup after the in-cluster record
    disappeared: its phase may under-state, so no deletion since the backup counts as a
    teammate's intent (meshops.cluster.drift)."""
    sequence: int = 0
    """How many times the record was written: each write counts one up. Signed with the rest,
    so an older genuine version put back (by someone who kept a copy) is told apart from the
    current one by its copy beside the backup, written at every change of course."""
    resource_version: str = field(default="", compare=False)

    @property
    def touched(self) -> bool:
        """Whether the cluster may have been changed by this migration."""
        return self.phase not in UNTOUCHED

    def reached(self, phase: str) -> bool:
        """Phases are written ahead: a step records its phase before it changes anything,
        so a run stopped at any point never looks less advanced than it is."""
        return PHASES.index(self.phase) >= PHASES.index(phase)

    def content(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("resource_version")
        data["backup"] = self.backup.to_dict() if self.backup else None
        data["earlier_backups"] = [b.to_dict() for b in self.earlier_backups]
        data["removed_policies"] = list(self.removed_policies)
        return data

    def to_json(self) -> str:
        return canonical(self.content()).decode()

    @classmethod
    def from_content(cls, data: Any, resource_version: str = "") -> "MigrationRecord":
        try:
            record = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in
                            ("backup", "earlier_backups", "removed_policies", "uninjected", "relabelled_workloads",
                             "resource_version")},
                         backup=BackupRef.from_dict(data["backup"]) if data.get("backup") else None,
                         earlier_backups=tuple(BackupRef.from_dict(b) for b in data.get("earlier_backups") or []),
                         removed_policies=tuple(str(p) for p in data.get("removed_policies") or ()),
                         uninjected={str(ns): {str(k): str(v) for k, v in (labels or {}).items()}
                                     for ns, labels in (data.get("uninjected") or {}).items()},
                         relabelled_workloads={str(k): str(v) for k, v in (data.get("relabelled_workloads") or {}).items()},
                         resource_version=resource_version)
        except (TypeError, KeyError, AttributeError, StepFailed):
            raise StepFailed(f"the migration record {NAMESPACE}/{NAME} is not readable; inspect it with "
                             f"`kubectl -n {NAMESPACE} get configmap {NAME} -o yaml`") from None
        if record.phase not in PHASES:
            raise StepFailed(f"the migration record {NAMESPACE}/{NAME} has an unknown phase {record.phase!r}")
        return record

    def describe(self) -> str:
        where = self.backup.location if self.backup else "no backup yet"
        return (f"stack {self.stack}, run {self.run_id}, {self.from_channel} -> {self.to_channel}, "
                f"phase {self.phase}, backup {where}")


def _cluster_identity(ctx: StepContext) -> dict[str, str]:
    return {"project": ctx.project, "location": ctx.location, "cluster": ctx.cluster}


def signed_document(key: StackKey, ctx: StepContext, record: MigrationRecord) -> dict[str, Any]:
    """The record with its signature, as stored in the ConfigMap and beside the backup."""
    content = record.content()
    return {"record": content, "mac": key.sign("record", {**_cluster_identity(ctx), "record": content})}


def verified_record(key: StackKey, ctx: StepContext, document: Any, where: str, resource_version: str = "") -> MigrationRecord:
    """The record in `document` if this stack signed it for this cluster; else a one-line refusal."""
    content = document.get("record") if isinstance(document, dict) else None
    named = ""
    if isinstance(content, dict):
        named = f" (it names stack {str(content.get('stack', '?'))[:120]}, run {str(content.get('run_id', '?'))[:60]})"
    if not isinstance(content, dict) or not key.verifies("record", {**_cluster_identity(ctx), "record": content},
                                                         document.get("mac")):
        raise StepFailed(
            f"cluster {ctx.cluster}: the migration record at {where}{named} is not signed by this stack ({key.stack}) for this "
            "cluster: another stack's, a gke-mesh version before signed records, or forged by someone with write access. "
            "Nothing was changed; find out who wrote it before deleting it (README \"Security\")")
    record = MigrationRecord.from_content(content, resource_version)
    if (record.stack, record.cluster, record.project, record.location) != (key.stack, ctx.cluster, ctx.project, ctx.location):
        raise StepFailed(f"cluster {ctx.cluster}: the migration record at {where} is about {record.project}/{record.location}/"
                         f"{record.cluster} of stack {record.stack}; refusing to act on it")
    return record


@dataclass(frozen=True)
class Claim:
    """The owner claim as read: who it names and whether this stack's key signed it."""

    stack: str
    guard: str
    signed_by_us: bool
    legacy: bool
    """Written by gke-mesh before signed claims (data `stack` only, the bare stack name)."""


@dataclass
class Ledger:
    """The record and the owner claim of one cluster, through kubectl, signed with `key`."""

    runner: Runner
    kube: Kube
    key: StackKey
    ctx: StepContext

    @property
    def where(self) -> str:
        return f"{NAMESPACE}/{NAME}"

    # ------------------------------------------------------------------ the record
    def present(self) -> bool:
        return bool(run_json(self.runner, self.kube.get_one("configmap", NAME, NAMESPACE)))

    def read(self) -> MigrationRecord | None:
        """This stack's record, None when there is none; a record this stack did not sign is a refusal."""
        found = run_json(self.runner, self.kube.get_one("configmap", NAME, NAMESPACE))
        if not found:
            return None
        meta = found.get("metadata") or {}
        data = found.get("data") or {}
        try:
            document = {"record": json.loads(data.get("record", "")), "mac": data.get("mac")}
        except ValueError:
            document = None
        return verified_record(self.key, self.ctx, document, self.where, str(meta.get("resourceVersion", "")))

    def _configmap(self, record: MigrationRecord) -> dict:
        signed = signed_document(self.key, self.ctx, record)
        metadata: dict[str, Any] = {"name": NAME, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "gke-mesh"}}
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                "data": {"record": canonical(signed["record"]).decode(), "mac": signed["mac"]}}

    def create(self, record: MigrationRecord) -> MigrationRecord:
        """Start (or re-create) a migration's record; fails if any record exists."""
        record = replace(record, resource_version="", sequence=record.sequence + 1)
        try:
            created = run_json(self.runner, self.kube.create(), input=json.dumps(self._configmap(record)))
        except StepFailed as error:
            if "AlreadyExists" in str(error) or "already exists" in str(error):
                raise StepFailed(f"cluster {record.cluster}: another migration started at the same time "
                                 f"({self.where} appeared); re-run `pulumi up` to see whose it is") from None
            raise
        return replace(record, resource_version=str(((created or {}).get("metadata") or {}).get("resourceVersion", "")))

    def advance(self, record: MigrationRecord, phase: str, **changes: Any) -> MigrationRecord:
        """Move the record forward to `phase` (never back: a replayed step does not rewind it)."""
        if PHASES.index(phase) < PHASES.index(record.phase):
            phase = record.phase
        updated = replace(record, phase=phase, **changes)
        if updated == record:
            return record
        updated = replace(updated, sequence=record.sequence + 1)
        try:
            written = run_json(self.runner, self.kube.replace(), input=json.dumps(self._configmap(updated)))
        except StepFailed as error:
            if "Conflict" in str(error) or "has been modified" in str(error):
                raise StepFailed(f"cluster {record.cluster}: the migration record changed under this step (another run?); "
                                 "re-run `pulumi up`") from None
            if "NotFound" in str(error) or "not found" in str(error):
                raise StepFailed(f"cluster {record.cluster}: the migration record {self.where} disappeared during this step "
                                 "(deleted by hand?); re-run `pulumi up`: it is re-created from its signed copy beside the backup") from None
            raise
        return replace(updated, resource_version=str(((written or {}).get("metadata") or {}).get("resourceVersion", "")))

    def clear(self) -> None:
        self.runner(self.kube.delete("configmap", [NAME], NAMESPACE))

    # ------------------------------------------------------------------ the owner claim
    def _claim_subject(self, stack: str, guard: str) -> dict[str, str]:
        return {**_cluster_identity(self.ctx), "stack": stack, "guard": guard}

    def owner(self) -> Claim | None:
        found = run_json(self.runner, self.kube.get_one("configmap", OWNER, NAMESPACE))
        if not found:
            return None
        data = {str(k): str(v) for k, v in (found.get("data") or {}).items()}
        stack, guard, mac = data.get("stack", ""), data.get("guard", ""), data.get("mac")
        return Claim(stack=stack, guard=guard, legacy=mac is None and "guard" not in data,
                     signed_by_us=self.key.verifies("claim", self._claim_subject(stack, guard), mac))

    def is_ours(self, claim: Claim, legacy_guard: bool = False) -> bool:
        """Signed by this stack; or an unsigned claim of an earlier gke-mesh naming this stack's
        bare name while this stack's own guard was created by that version and claimed the
        cluster then (`legacy_guard`, from the guard's stored result): a bare name alone could
        be another project's stack of the same name."""
        bare = self.key.stack.rsplit("/", 1)[-1]
        return (claim.signed_by_us and claim.stack == self.key.stack) or (claim.legacy and claim.stack == bare and legacy_guard)

    def claim(self, guard: str, legacy_guard: bool = False) -> None:
        """Make this stack (and its guard resource `guard`) the owner, or refuse when another
        stack holds the cluster. Only preflight claims, after every check passed."""
        held = self.owner()
        if held is not None and not self.is_ours(held, legacy_guard):
            raise StepFailed(owned_elsewhere(self.ctx.cluster, held, self.key.stack))
        if held is not None and held.signed_by_us and held.guard == guard:
            return
        data = {"stack": self.key.stack, "guard": guard, "mac": self.key.sign("claim", self._claim_subject(self.key.stack, guard))}
        document = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                    "metadata": {"name": OWNER, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "gke-mesh"}}}
        try:
            self.runner(self.kube.replace() if held is not None else self.kube.create(), input=json.dumps(document))
        except StepFailed as error:
            if "AlreadyExists" not in str(error):
                raise
            raise StepFailed(f"cluster {self.ctx.cluster}: another stack claimed it at the same time ({NAMESPACE}/{OWNER} "
                             "appeared); re-run `pulumi up` to see which") from None

    def release(self, guard: str, legacy_guard: bool = False) -> bool:
        """Drop this stack's claim, if it is this guard's (a renamed guard's new resource
        claimed it since: the old one's delete must leave it)."""
        held = self.owner()
        if held is None or not self.is_ours(held, legacy_guard) or (held.signed_by_us and held.guard not in ("", guard)):
            return False
        self.runner(self.kube.delete("configmap", [OWNER], NAMESPACE))
        return True


def owned_elsewhere(cluster: str, held: Claim, stack: str) -> str:
    who = f"stack {held.stack[:120]}" if held.stack else "an unnamed writer"
    how = (" (naming this stack but not signed with its key: forged, or written with another copy of its state)"
           if held.stack == stack and not held.signed_by_us else "")
    return (f"cluster {cluster} is claimed by {who}{how} ({NAMESPACE}/{OWNER}); one cluster belongs to one stack: remove it "
            f"from that stack first (its guard releases it), or from stack {stack}. If this stack held it before, someone "
            "deleted its claim and another stack took the cluster: decide which stack owns it before going on")


FINISHED = "finished.json"
"""A run's terminal marker beside its backup: written once, signed, when verify proved the
run (`verified`) or a run that changed nothing was dropped (`dropped`). A run with one is
never resumed, whatever its record copy says (an older version of the copy put back as the
live object cannot revive it)."""


def finished_document(key: StackKey, ctx: StepContext, run_id: str, outcome: str) -> dict[str, Any]:
    subject = {**_cluster_identity(ctx), "run_id": run_id, "outcome": outcome}
    return {**subject, "mac": key.sign("finished", subject)}


def finished_outcome(key: StackKey, ctx: StepContext, document: Any, run_id: str) -> str | None:
    """The outcome a finished marker signed by this stack for this cluster and run states, else None."""
    if not isinstance(document, dict) or document.get("run_id") != run_id:
        return None
    subject = {**_cluster_identity(ctx), "run_id": run_id, "outcome": str(document.get("outcome", ""))}
    return subject["outcome"] if key.verifies("finished", subject, document.get("mac")) else None
