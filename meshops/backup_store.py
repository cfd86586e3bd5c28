"""Backups: written, read back and verified before anything is deleted.

Layout under `<location>/`: `objects/<plural>.<group>.json` (the sanitized objects of one
kind), `namespaces.json` (injection labels), `configmaps.json` (the `istio-<revision>`
mesh config maps), `archive.json` (every config map and secret of istio-system and
asm-system, which the purge deletes; files are 0600) and `manifest.json`, written last, with counts and a sha256 per object
and per file. A `gs://` location is staged locally, copied with `gcloud storage cp`, and
copied back to verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshops import gcloud
from meshops.objects import canonical, digest, sanitize
from meshops.process import Runner, StepFailed

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: archive.json


@dataclass
class Backup:
    """What a backup holds, in memory."""

    cluster: str
    from_channel: str
    to_channel: str
    run_id: str
    objects: dict[str, list[dict]] = field(default_factory=dict)  # resource -> sanitized objects
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # namespace -> injection labels
    configmaps: list[dict] = field(default_factory=list)
    archive: list[dict] = field(default_factory=list)
    """Config maps and secrets of istio-system/asm-system: the purge deletes those
    namespaces, so they are kept here (not restored automatically)."""

    @property
    def object_count(self) -> int:
        return sum(len(v) for v in self.objects.values())

    def peer_authentication_modes(self) -> dict[str, str]:
        modes = {}
        for obj in self.objects.get("peerauthentications.security.istio.io", []):
            meta = obj.get("metadata", {})
            modes[f"{meta.get('namespace', '')}/{meta.get('name', '')}"] = ((obj.get("spec") or {}).get("mtls") or {}).get("mode", "UNSET")
        return modes


def _files(backup: Backup) -> dict[str, bytes]:
    files = {f"objects/{resource}.json": canonical(objs) for resource, objs in sorted(backup.objects.items())}
    files["namespaces.json"] = canonical(backup.namespaces)
    files["configmaps.json"] = canonical(backup.configmaps)
    files["archive.json"] = canonical(backup.archive)
    return files


def _manifest(backup: Backup, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "cluster": backup.cluster,
        "from_channel": backup.from_channel,
        "to_channel": backup.to_channel,
        "run_id": backup.run_id,
        "counts": {resource: len(objs) for resource, objs in sorted(backup.objects.items())},
        "total": backup.object_count,
        "archived": len(backup.archive),
        "objects": [
            {"resource": resource, "namespace": o["metadata"].get("namespace", ""), "name": o["metadata"].get("name", ""),
             "sha256": digest(o)}
            for resource, objs in sorted(backup.objects.items()) for o in objs
        ],
        "peer_authentication_modes": backup.peer_authentication_modes(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def _write_local(folder: Path, backup: Backup) -> None:
    files = _files(backup)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
    # The manifest goes last: a folder without one is an unfinished backup.
    (folder / MANIFEST).write_bytes(canonical(_manifest(backup, files)))
    os.chmod(folder / MANIFEST, 0o600)


def _read_local(folder: Path) -> Backup:
    """Read a backup and check every file and object against its manifest."""
    where = str(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise StepFailed(f"no verified backup at {where}: manifest.json is missing") from None
    except ValueError:
        raise StepFailed(f"backup at {where}: manifest.json is not valid JSON") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise StepFailed(f"backup at {where}: unknown manifest format {manifest.get('format')!r}")
    for name, expected in manifest["files"].items():
        try:
            data = (folder / name).read_bytes()
        except FileNotFoundError:
            raise StepFailed(f"backup at {where}: {name} is missing") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise StepFailed(f"backup at {where}: {name} does not match its sha256 in the manifest")
    backup = Backup(manifest["cluster"], manifest["from_channel"], manifest["to_channel"], manifest["run_id"])
    backup.objects = {name[len("objects/"):-len(".json")]: json.loads((folder / name).read_bytes())
                      for name in manifest["files"] if name.startswith("objects/")}
    backup.namespaces = json.loads((folder / "namespaces.json").read_bytes())
    backup.configmaps = json.loads((folder / "configmaps.json").read_bytes())
    backup.archive = json.loads((folder / "archive.json").read_bytes())
    if len(backup.archive) != manifest.get("archived"):
        raise StepFailed(f"backup at {where}: archive.json does not match the manifest's count")
    actual = sorted((resource, o["metadata"].get("namespace", ""), o["metadata"].get("name", ""), digest(o))
                    for resource, objs in backup.objects.items() for o in objs)
    expected_objects = sorted((e["resource"], e["namespace"], e["name"], e["sha256"]) for e in manifest["objects"])
    if actual != expected_objects or backup.object_count != manifest["total"]:
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

    def write(self, backup: Backup) -> None:
        if not self.remote:
            folder = Path(self.location)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_local(folder, backup)
            return
        staging = Path(tempfile.mkdtemp(prefix="gke-mesh-backup-"))
        try:
            run_folder = staging / self.location.rsplit("/", 1)[1]
            run_folder.mkdir(mode=0o700)
            _write_local(run_folder, backup)
            self.runner(gcloud.storage_copy(str(run_folder), self.location.rsplit("/", 1)[0] + "/"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def read_verified(self) -> Backup:
        """Read the backup back from where it is stored and verify it; StepFailed if it does not verify."""
        if not self.remote:
            return _read_local(Path(self.location))
        staging = Path(tempfile.mkdtemp(prefix="gke-mesh-restore-"))
        try:
            self.runner(gcloud.storage_copy(self.location, str(staging) + "/"))
            return _read_local(staging / self.location.rsplit("/", 1)[1])
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def exists(self) -> bool:
        try:
            self.read_verified()
        except StepFailed:
            return False
        return True


def planned_reads(location: str) -> list[list[str]]:
    """The CLI calls of `read_verified` (for the plan): a copy back from a gs:// location."""
    return [gcloud.storage_copy(location, "<staging>/")] if location.startswith("gs://") else []


def planned_writes(location: str) -> list[list[str]]:
    """The CLI calls of `write` then `read_verified` (for the plan)."""
    if not location.startswith("gs://"):
        return []
    parent, run_folder = location.rsplit("/", 1)
    return [gcloud.storage_copy(f"<staging>/{run_folder}", parent + "/"), *planned_reads(location)]


def sanitized(objs: list[dict]) -> list[dict]:
    return sorted((sanitize(o) for o in objs), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
