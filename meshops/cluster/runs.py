"""Finding a stack's runs of one cluster by the record copies beside their backups.

Each run's folder, `<backupUri>/<org>/<project>/<stack>/<cluster>/<from>-to-<to>/<run-id>`,
holds a signed `record.json` once its backup is written. When the in-cluster record is
gone, these copies are what is left: the newest run's copy says whether a migration of
this stack is still unfinished. Run ids start with their UTC start time, so they sort in
the order the runs started. Listing is `gcloud storage objects list` (live and noncurrent
versions: surface/storage/objects/list.py, ObjectState.LIVE_AND_NONCURRENT; names are
deduplicated), or the local folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshops.cluster import gcloud
from meshops.cluster.backup_store import RECORD
from meshops.cluster.process import Runner, StepFailed, run_json


def record_copies(folder: str, runner: Runner) -> dict[str, str]:
    """Run id -> run folder, for every run under `folder` with a record copy."""
    folder = folder.rstrip("/")
    if folder.startswith("gs://"):
        listed = run_json(runner, gcloud.list_objects(f"{folder}/**")) or []
        if not isinstance(listed, list):
            raise StepFailed(f"gcloud storage objects list {folder}/** returned no list")
        locations = {f"gs://{item['bucket']}/{item['name']}" for item in listed
                     if isinstance(item, dict) and isinstance(item.get("bucket"), str) and isinstance(item.get("name"), str)}
    else:
        locations = {str(path) for path in Path(folder).glob(f"*/*/{RECORD}")}
    return {run_folder.rsplit("/", 1)[-1]: run_folder for run_folder in _run_folders(folder, locations)}


def _run_folders(folder: str, locations: set[str]) -> list[str]:
    """`<folder>/<from>-to-<to>/<run-id>` of each record copy among `locations`."""
    found = []
    for location in sorted(locations):
        rest = location[len(folder) + 1:] if location.startswith(folder + "/") else ""
        parts = rest.split("/")
        if len(parts) == 3 and parts[2] == RECORD and "-to-" in parts[0] and parts[1]:
            found.append(f"{folder}/{parts[0]}/{parts[1]}")
    return found


def newest(copies: dict[str, str]) -> tuple[str, str] | None:
    """(run id, folder) of the run that started last."""
    return max(copies.items()) if copies else None


def describe(copies: dict[str, Any]) -> str:
    return ", ".join(sorted(copies)) or "none"
