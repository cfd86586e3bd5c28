"""Backups: written, read back and verified before anything is deleted.

A backup is two files under its location: `backup.json` (every sanitized Istio object by
kind, the namespaces' injection labels, which namespaces had injected pods, the
`istio-<revision>` mesh config maps and, archive only, every config map and secret of
istio-system and asm-system) and `manifest.json` (counts, a sha256 per object and the
sha256 of backup.json). A `record.json` beside them repeats the migration record.

A backup is addressed by a `BackupRef`: its location and the sha256 of its manifest. The
reference travels through Pulumi state from the step that wrote it; reading checks the
manifest against it, then backup.json against the manifest, then every object.

Nothing with cluster data is staged in a temp folder: a `gs://` backup is streamed to
`gcloud storage cp - URL` on stdin and read back with `gcloud storage cat` (the command
provider kills a cancelled step with SIGKILL, which would leave a temp folder behind).
Local backups are files of mode 0600 in folders of mode 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from meshops.cluster import gcloud
from meshops.cluster.objects import canonical, digest, retargeted, sanitize
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import BackupRef, MigrationRecord

MANIFEST = "manifest.json"
CONTENT = "backup.json"
RECORD = "record.json"
FORMAT_VERSION = 3  # 3: one content file, addressed by the manifest's sha256


@dataclass
class Backup:
    """What a backup holds, in memory."""

    cluster: str
    from_channel: str
    to_channel: str
    run_id: str
    objects: dict[str, list[dict]] = field(default_factory=dict)  # resource -> sanitized objects
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # namespace -> injection labels
    injected: dict[str, int] = field(default_factory=dict)  # namespace -> pods with a sidecar at backup time
    configmaps: list[dict] = field(default_factory=list)
    archive: list[dict] = field(default_factory=list)
    """Config maps and secrets of istio-system/asm-system: the purge deletes those
    namespaces, so they are kept here (not restored automatically)."""
    revision_tags: dict[str, str] = field(default_factory=dict)
    """Revision tag -> the revision it pointed at (the `istio-revision-tag-<tag>` webhooks the
    purge deletes), so namespaces labelled with a tag can be injected again."""

    @property
    def object_count(self) -> int:
        return sum(len(v) for v in self.objects.values())

    def keyed(self) -> dict[tuple[str, str, str], dict]:
        """(resource, namespace, name) -> object."""
        return {(r, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for r, objs in self.objects.items() for o in objs}

    def as_restored(self, from_revision: str, to_revision: str) -> "Backup":
        """This backup's objects as restore writes them on `to_revision` (revision labels
        moved: objects.retargeted); what restore, verify and the drift check compare with."""
        objects = {r: [retargeted(o, from_revision, to_revision, self.revision_tags) for o in objs] for r, objs in self.objects.items()}
        return replace(self, objects=objects)

    def peer_authentication_modes(self) -> dict[str, str]:
        return peer_authentication_modes(self.objects.get("peerauthentications.security.istio.io", []))

    def content(self) -> bytes:
        return canonical({"cluster": self.cluster, "from_channel": self.from_channel, "to_channel": self.to_channel,
                          "run_id": self.run_id, "objects": self.objects, "namespaces": self.namespaces,
                          "injected": self.injected, "configmaps": self.configmaps, "archive": self.archive,
                          **({"revision_tags": self.revision_tags} if self.revision_tags else {})})

    def manifest(self, content: bytes) -> bytes:
        return canonical({
            "format": FORMAT_VERSION, "cluster": self.cluster, "from_channel": self.from_channel,
            "to_channel": self.to_channel, "run_id": self.run_id,
            "counts": {resource: len(objs) for resource, objs in sorted(self.objects.items())},
            "total": self.object_count, "archived": len(self.archive),
            "objects": [{"resource": r, "namespace": o["metadata"].get("namespace", ""), "name": o["metadata"]["name"],
                         "sha256": digest(o)} for r, objs in sorted(self.objects.items()) for o in objs],
            "peer_authentication_modes": self.peer_authentication_modes(),
            "injected": self.injected,
            "files": {CONTENT: hashlib.sha256(content).hexdigest()},
        })


def peer_authentication_modes(objs: list[dict]) -> dict[str, str]:
    """namespace/name -> mTLS mode (port-level modes included as name:port)."""
    modes = {}
    for obj in objs:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        modes[key] = (spec.get("mtls") or {}).get("mode", "UNSET")
        for port, value in sorted((spec.get("portLevelMtls") or {}).items()):
            modes[f"{key}:{port}"] = (value or {}).get("mode", "UNSET")
    return modes


def parse(manifest_bytes: bytes, content_bytes: bytes, where: str) -> Backup:
    """Check backup.json against its manifest and every object against its digest."""
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise StepFailed(f"backup at {where}: manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise StepFailed(f"backup at {where}: unknown manifest format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    if hashlib.sha256(content_bytes).hexdigest() != (manifest.get("files") or {}).get(CONTENT):
        raise StepFailed(f"backup at {where}: {CONTENT} does not match its sha256 in the manifest")
    data = json.loads(content_bytes)
    backup = Backup(data["cluster"], data["from_channel"], data["to_channel"], data["run_id"], data["objects"],
                    data["namespaces"], data["injected"], data["configmaps"], data["archive"], data.get("revision_tags", {}))
    actual = sorted((r, o["metadata"].get("namespace", ""), o["metadata"].get("name", ""), digest(o))
                    for r, objs in backup.objects.items() for o in objs)
    expected = sorted((e["resource"], e["namespace"], e["name"], e["sha256"]) for e in manifest["objects"])
    if actual != expected or backup.object_count != manifest["total"] or len(backup.archive) != manifest["archived"]:
        raise StepFailed(f"backup at {where}: objects do not match the manifest's counts and digests")
    return backup


class BackupStore:
    """A backup location: a local folder (relative to the project) or a gs:// prefix."""

    def __init__(self, location: str, runner: Runner):
        self.location = location.rstrip("/")
        self.runner = runner

    @property
    def remote(self) -> bool:
        return self.location.startswith("gs://")

    def _put(self, name: str, data: bytes) -> None:
        if self.remote:
            self.runner(gcloud.storage_write(f"{self.location}/{name}"), input=data.decode())
            return
        folder = Path(self.location)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)

    def _get(self, name: str) -> bytes:
        if self.remote:
            return self.runner(gcloud.storage_read(f"{self.location}/{name}")).encode()
        try:
            return (Path(self.location) / name).read_bytes()
        except FileNotFoundError:
            raise StepFailed(f"no backup at {self.location}: {name} is missing (a local backup stays on the machine "
                             "that wrote it; use a gs:// backupUri)") from None

    def write(self, backup: Backup) -> BackupRef:
        """Write content, then the manifest (last: a location without one is unfinished),
        read both back and verify; returns the reference later steps use."""
        content = backup.content()
        manifest = backup.manifest(content)
        self._put(CONTENT, content)
        self._put(MANIFEST, manifest)
        ref = BackupRef(self.location, hashlib.sha256(manifest).hexdigest())
        verified = self.read(ref)
        if verified.object_count != backup.object_count:
            raise StepFailed(f"backup at {self.location}: read back {verified.object_count} objects, wrote {backup.object_count}")
        return ref

    def read(self, ref: BackupRef) -> Backup:
        """The backup `ref` names, verified; StepFailed if any check fails."""
        if ref.location.rstrip("/") != self.location:
            raise StepFailed(f"backup reference names {ref.location}, not {self.location}")
        manifest = self._get(MANIFEST)
        if hashlib.sha256(manifest).hexdigest() != ref.manifest_sha256:
            raise StepFailed(f"backup at {self.location}: manifest.json is not the one this migration recorded "
                             f"(sha256 differs); it was replaced after the backup: refusing to use it")
        return parse(manifest, self._get(CONTENT), self.location)

    def write_record(self, record: MigrationRecord) -> None:
        self._put(RECORD, record.to_json().encode())


def read_backup(ref: BackupRef, runner: Runner) -> Backup:
    return BackupStore(ref.location, runner).read(ref)


def check_bucket(location: str, runner: Runner) -> None:
    """Refuse a bucket that could leak or lose the backup (it holds the mesh's secrets).

    Field names are those of `gcloud storage buckets describe --format=json` (gcloud's
    command_lib/storage/resources/gcs_resource_reference.py, GcsBucketResource)."""
    bucket = "gs://" + location.removeprefix("gs://").split("/", 1)[0]
    described = run_json(runner, gcloud.describe_bucket(bucket))
    if not isinstance(described, dict):
        raise StepFailed(f"gcloud storage buckets describe {bucket} returned no bucket")
    problems = []
    if described.get("uniform_bucket_level_access") is not True:
        problems.append("uniform bucket-level access is off (fix: gcloud storage buckets update "
                        f"{bucket} --uniform-bucket-level-access)")
    if described.get("public_access_prevention") != "enforced":
        problems.append(f"public access prevention is not enforced (fix: gcloud storage buckets update {bucket} --public-access-prevention)")
    if described.get("versioning_enabled") is not True:
        problems.append(f"versioning is off (fix: gcloud storage buckets update {bucket} --versioning)")
    if problems:
        raise StepFailed(f"backup bucket {bucket} is not safe for the mesh's secrets: {'; '.join(problems)}")


def planned_reads(location: str) -> list[list[str]]:
    """The CLI calls of `read` (for the plan)."""
    if not location.startswith("gs://"):
        return []
    return [gcloud.storage_read(f"{location}/{MANIFEST}"), gcloud.storage_read(f"{location}/{CONTENT}")]


def planned_writes(location: str) -> list[list[str]]:
    """The CLI calls of `write` then its read-back, and the record beside it (for the plan)."""
    if not location.startswith("gs://"):
        return []
    return [gcloud.storage_write(f"{location}/{CONTENT}"), gcloud.storage_write(f"{location}/{MANIFEST}"),
            *planned_reads(location), gcloud.storage_write(f"{location}/{RECORD}")]


def sanitized(objs: list[dict]) -> list[dict]:
    return sorted((sanitize(o) for o in objs), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
