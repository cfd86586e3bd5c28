"""Finding a stack's runs of one cluster by what lies beside their backups.

Each run's folder, `<backupUri>/<org>/<project>/<stack>/<cluster>/<from>-to-<to>/<run-id>`,
holds a signed `record.json` once its backup is written (rewritten at every change of
course) and, once the run is over, a signed `finished.json`. When the in-cluster record is
gone, these are what is left: they say whether a migration of this stack is unfinished.
Run ids start with their UTC start time, so they sort in the order the runs started.
Listing is `gcloud storage objects list` (live and noncurrent versions:
surface/storage/objects/list.py, ObjectState.LIVE_AND_NONCURRENT), so a file deleted from a
versioned bucket is still found, at its newest generation; or the local folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meshops.cluster import gcloud
from meshops.cluster.process import Runner, StepFailed, run_json


@dataclass(frozen=True)
class Run:
    run_id: str
    folder: str
    files: dict[str, str | None] = field(default_factory=dict)
    """File name in the run's folder -> its newest generation (None for a local folder)."""


def runs_in(folder: str, runner: Runner) -> dict[str, Run]:
    """Run id -> the run, for every run folder under `folder` (one level of <from>-to-<to>)."""
    folder = folder.rstrip("/")
    found: dict[str, dict[str, str | None]] = {}
    if folder.startswith("gs://"):
        listed = run_json(runner, gcloud.list_objects(f"{folder}/**")) or []
        if not isinstance(listed, list):
            raise StepFailed(f"gcloud storage objects list {folder}/** returned no list")
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("bucket"), str) or not isinstance(item.get("name"), str):
                continue
            _add(found, folder, f"gs://{item['bucket']}/{item['name']}", str(item.get("generation", "")) or None)
    else:
        for path in Path(folder).glob("*/*/*"):
            if path.is_file():
                _add(found, folder, str(path), None)
    return {run_folder.rsplit("/", 1)[-1]: Run(run_folder.rsplit("/", 1)[-1], run_folder, files)
            for run_folder, files in sorted(found.items())}


def _add(found: dict[str, dict[str, str | None]], folder: str, location: str, generation: str | None) -> None:
    rest = location[len(folder) + 1:] if location.startswith(folder + "/") else ""
    parts = rest.split("/")
    if len(parts) != 3 or "-to-" not in parts[0] or not parts[1] or not parts[2]:
        return
    files = found.setdefault(f"{folder}/{parts[0]}/{parts[1]}", {})
    newest = files.get(parts[2])
    if parts[2] not in files or (generation and (newest is None or int(generation) > int(newest))):
        files[parts[2]] = generation
