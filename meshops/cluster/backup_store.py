"""Backups: written, read back and verified before anything is deleted.

A backup is two files under its location: `backup.json` (every sanitized Istio object by
kind, the namespaces' injection labels, which namespaces had injected pods, the
`istio-<revision>` mesh config maps and, archive only, every config map and secret of
istio-system and asm-system) and `manifest.json` (counts, a sha256 per object and the
sha256 of backup.json). A `record.json` beside them repeats the migration record.

A backup is addressed by a `BackupRef`: its location, the sha256 of its manifest and (gs://)
the generation of each object written. The reference travels through Pulumi state from the
step that wrote it and in the signed migration record; reading takes the pinned
generations (so an object overwritten in the bucket since does not matter), checks the
manifest against the reference, backup.json against the manifest, every object against its
digest, and that the backup is of this cluster, stack and run (`Owner`).

Nothing with cluster data is staged in a temp folder: a `gs://` backup is streamed to
`gcloud storage cp - URL` on stdin and read back with `gcloud storage cat` (the command
provider kills a cancelled step with SIGKILL, which would leave a temp folder behind).
Local backups are files of mode 0600 in folders of mode 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.objects import canonical, digest, retargeted, sanitize
from meshops.cluster.process import Runner, StepFailed, run_json
from meshops.cluster.record import FINISHED, BackupRef

MANIFEST = "manifest.json"
CONTENT = "backup.json"
RECORD = "record.json"
FORMAT_VERSION = 4  # 4: the backup names its stack, project and location; 3: one content file
READABLE_FORMATS = (3, 4)
_SUPPLEMENT = re.compile(r"/supplement-[0-9]+$")


@dataclass(frozen=True)
class Owner:
    """Whose backup it must be: the stack (<org>/<project>/<stack>) and the cluster."""

    stack: str
    project: str
    location: str
    cluster: str

    def folder(self, backup_uri: str) -> str:
        """Where this stack keeps this cluster's backups: <backupUri>/<org>/<project>/<stack>/<cluster>."""
        return f"{backup_uri.rstrip('/')}/{self.stack}/{self.cluster}"

    def problem(self, backup: "Backup", location: str, run_id: str | None) -> str | None:
        """Why the backup at `location` is not this owner's (for run `run_id`), or None."""
        if f"/{self.stack}/{self.cluster}/" not in f"/{location.rstrip('/')}/":
            return f"its location is not under this stack's folder <backupUri>/{self.stack}/{self.cluster}"
        if run_id is not None and run_location(location).rsplit("/", 1)[-1] != run_id:
            return f"its location is not run {run_id}'s folder"
        found = {"cluster": backup.cluster, "project": backup.project, "location": backup.location, "stack": backup.stack}
        wanted = {"cluster": self.cluster, "project": self.project, "location": self.location, "stack": self.stack}
        if backup.format < 4:  # written before backups named their owner: the cluster name is all there is
            found, wanted = {"cluster": found["cluster"]}, {"cluster": wanted["cluster"]}
        differ = sorted(k for k in wanted if found[k] != wanted[k])
        if differ:
            return "it is a backup of " + ", ".join(f"{k} {found[k]!r}" for k in differ) + " (this is " + \
                ", ".join(f"{k} {wanted[k]!r}" for k in differ) + ")"
        if run_id is not None and backup.run_id != run_id:
            return f"it is a backup of run {backup.run_id}, not {run_id}"
        return None


def run_location(location: str) -> str:
    """A run's main backup folder, for a supplementary backup's location too."""
    return _SUPPLEMENT.sub("", location.rstrip("/"))


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
    stack: str = ""
    project: str = ""
    location: str = ""
    format: int = FORMAT_VERSION
    injected_workloads: list[str] = field(default_factory=list)
    """namespace/kind/name of every workload with a sidecar at backup time: verify checks each
    one runs a sidecar of the new revision again (a namespace count alone misses a partial loss)."""

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
                          **({"revision_tags": self.revision_tags} if self.revision_tags else {}),
                          "stack": self.stack, "project": self.project, "location": self.location,
                          **({"injected_workloads": self.injected_workloads} if self.injected_workloads else {})})

    def manifest(self, content: bytes) -> bytes:
        return canonical({
            "format": FORMAT_VERSION, "cluster": self.cluster, "stack": self.stack, "project": self.project,
            "location": self.location, "from_channel": self.from_channel,
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
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_FORMATS:
        raise StepFailed(f"backup at {where}: unknown manifest format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    if hashlib.sha256(content_bytes).hexdigest() != (manifest.get("files") or {}).get(CONTENT):
        raise StepFailed(f"backup at {where}: {CONTENT} does not match its sha256 in the manifest")
    try:
        data = json.loads(content_bytes)
        backup = Backup(str(data["cluster"]), str(data["from_channel"]), str(data["to_channel"]), str(data["run_id"]),
                        _objects(data["objects"]), _label_map(data["namespaces"]), dict(data["injected"]),
                        _object_list(data["configmaps"]), _object_list(data["archive"]), dict(data.get("revision_tags") or {}),
                        str(data.get("stack", "")), str(data.get("project", "")), str(data.get("location", "")),
                        int(manifest["format"]), [str(w) for w in data.get("injected_workloads") or []])
        actual = sorted((r, o["metadata"].get("namespace", ""), o["metadata"].get("name", ""), digest(o))
                        for r, objs in backup.objects.items() for o in objs)
        expected = sorted((e["resource"], e["namespace"], e["name"], e["sha256"]) for e in manifest["objects"])
        counted = backup.object_count == manifest["total"] and len(backup.archive) == manifest["archived"]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise StepFailed(f"backup at {where}: {CONTENT} or {MANIFEST} is not a gke-mesh backup") from None
    if actual != expected or not counted:
        raise StepFailed(f"backup at {where}: objects do not match the manifest's counts and digests")
    return backup


def _object_list(value: Any) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("metadata"), dict) for o in value):
        raise TypeError("objects")
    return value


def _objects(value: Any) -> dict[str, list[dict]]:
    if not isinstance(value, dict):
        raise TypeError("objects")
    return {str(resource): _object_list(objs) for resource, objs in value.items()}


def _label_map(value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise TypeError("namespaces")
    return {str(ns): {str(k): str(v) for k, v in labels.items()} for ns, labels in value.items()}


class BackupStore:
    """A backup location: a local folder (relative to the project) or a gs:// prefix."""

    def __init__(self, location: str, runner: Runner):
        self.location = location.rstrip("/")
        self.runner = runner

    @property
    def remote(self) -> bool:
        return self.location.startswith("gs://")

    def _put(self, name: str, data: bytes, pin: bool = True) -> str | None:
        """Write one file; for gs:// and `pin`, return the generation the bucket gave it (read
        right after: if someone wrote in between, the read-back of that generation fails the checks)."""
        if self.remote:
            url = f"{self.location}/{name}"
            self.runner(gcloud.storage_write(url), input=data.decode())
            if not pin:
                return None
            described = run_json(self.runner, gcloud.describe_object(url))
            generation = str((described or {}).get("generation", "")) if isinstance(described, dict) else ""
            if not generation.isdigit():
                raise StepFailed(f"gcloud storage objects describe {url} returned no generation")
            return generation
        folder = Path(self.location)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return None

    def _get(self, name: str, generation: str | None = None) -> bytes:
        if self.remote:
            url = f"{self.location}/{name}" + (f"#{generation}" if generation else "")
            return self.runner(gcloud.storage_read(url)).encode()
        try:
            return (Path(self.location) / name).read_bytes()
        except FileNotFoundError:
            raise StepFailed(f"no backup at {self.location}: {name} is missing (a local backup stays on the machine "
                             "that wrote it; use a gs:// backupUri)") from None

    def write(self, backup: Backup) -> BackupRef:
        """Write content, then the manifest (last: a location without one is unfinished),
        read both back at the generations written and verify; returns the reference later steps use."""
        content = backup.content()
        manifest = backup.manifest(content)
        generations = {CONTENT: self._put(CONTENT, content), MANIFEST: self._put(MANIFEST, manifest)}
        ref = BackupRef(self.location, hashlib.sha256(manifest).hexdigest(),
                        tuple(sorted((k, v) for k, v in generations.items() if v)))
        verified = self.read(ref)
        if verified.object_count != backup.object_count:
            raise StepFailed(f"backup at {self.location}: read back {verified.object_count} objects, wrote {backup.object_count}")
        return ref

    def read(self, ref: BackupRef) -> Backup:
        """The backup `ref` names, verified; StepFailed if any check fails."""
        if ref.location.rstrip("/") != self.location:
            raise StepFailed(f"backup reference names {ref.location}, not {self.location}")
        manifest = self._get(MANIFEST, ref.generation_of(MANIFEST))
        if hashlib.sha256(manifest).hexdigest() != ref.manifest_sha256:
            raise StepFailed(f"backup at {self.location}: manifest.json is not the one this migration recorded "
                             f"(sha256 differs); it was replaced after the backup: refusing to use it")
        return parse(manifest, self._get(CONTENT, ref.generation_of(CONTENT)), self.location)

    def write_record(self, document: dict) -> None:
        """The signed record (meshops.cluster.record.signed_document) beside the backup."""
        self._put(RECORD, canonical(document), pin=False)

    def write_finished(self, document: dict) -> None:
        """The run's signed terminal marker (meshops.cluster.record.finished_document)."""
        self._put(FINISHED, canonical(document), pin=False)

    def read_record(self) -> Any:
        """The record copy beside the backup as written (unchecked: the caller verifies its
        signature), or None when there is none."""
        return self.read_json(RECORD)

    def read_json(self, name: str, generation: str | None = None) -> Any:
        """A JSON file of this folder (at `generation`), None when there is none, {} when not JSON."""
        try:
            return json.loads(self._get(name, generation))
        except StepFailed as error:
            if "matched no objects" in str(error) or "is missing" in str(error) or "No such object" in str(error):
                return None
            raise
        except ValueError:
            return {}


def read_backup(ref: BackupRef, runner: Runner, owner: Owner | None = None, run_id: str | None = None) -> Backup:
    """The backup `ref` names, verified; with `owner`, refused unless it is that owner's
    (and run `run_id`'s) backup: a reference can come from a record someone else wrote."""
    backup = BackupStore(ref.location, runner).read(ref)
    problem = owner.problem(backup, ref.location, run_id) if owner else None
    if problem:
        raise StepFailed(f"backup at {ref.location} is not this cluster's: {problem}; refusing to use it")
    return backup


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
    return [gcloud.storage_read(f"{location}/{MANIFEST}#<generation>"), gcloud.storage_read(f"{location}/{CONTENT}#<generation>")]


def planned_writes(location: str) -> list[list[str]]:
    """The CLI calls of `write` then its read-back, and the record beside it (for the plan)."""
    if not location.startswith("gs://"):
        return []
    return [*(call for name in (CONTENT, MANIFEST) for call in (gcloud.storage_write(f"{location}/{name}"),
                                                                gcloud.describe_object(f"{location}/{name}"))),
            *planned_reads(location), gcloud.storage_write(f"{location}/{RECORD}")]


def sanitized(objs: list[dict]) -> list[dict]:
    return sorted((sanitize(o) for o in objs), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
