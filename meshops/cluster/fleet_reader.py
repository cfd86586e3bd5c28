"""One `gcloud container fleet mesh describe` per fleet project per `MIN_AGE` seconds,
shared by every step polling that project at the same time.

`pulumi up` runs each cluster's wait-ready in its own process, so the answer is shared
through a small file cache (a private 0700 folder per Unix user, a lock per project);
within one process (tests, benches) a memory cache does the same. One describe answers
for every membership of the project, so 100 clusters waiting together cost what one does.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from meshops.cluster import gcloud
from meshops.cluster.process import Runner, run_json

MIN_AGE = 21.0
"""Seconds an answer is reused: fewer than 60 describes per project in 20 minutes."""


class MemoryCache:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, project: str) -> tuple[float, Any] | None:
        return self.entries.get(project)

    def put(self, project: str, fetched_at: float, data: Any) -> None:
        self.entries[project] = (fetched_at, data)

    @contextmanager
    def lock(self, project: str) -> Iterator[None]:
        with self._lock:
            yield


class FileCache:
    """Answers shared between the step processes of one user on one machine."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def private(cls) -> "FileCache | MemoryCache":
        """The per-user cache folder ($XDG_RUNTIME_DIR/gke-mesh, else ~/.cache/gke-mesh), or a
        memory cache when it cannot be trusted: it must be a real directory (a symlink is
        refused: `lstat`, not `stat`), owned by this user, and private to it."""
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        base = Path(runtime) if runtime.startswith("/") else Path.home() / ".cache"
        folder = base / "gke-mesh"
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not folder.is_symlink():
                folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            return MemoryCache()
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return MemoryCache()  # a link, someone else's or a shared folder: never read it
        return cls(folder)

    def _path(self, project: str, suffix: str) -> Path:
        return self.folder / f"{project}.{suffix}"

    def get(self, project: str) -> tuple[float, Any] | None:
        try:
            entry = json.loads(self._path(project, "json").read_text())
            return float(entry["fetched_at"]), entry["data"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, project: str, fetched_at: float, data: Any) -> None:
        target = self._path(project, "json")
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"fetched_at": fetched_at, "data": data}, handle)
        os.replace(temporary, target)

    @contextmanager
    def lock(self, project: str) -> Iterator[None]:
        with open(self._path(project, "lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class FleetReader:
    def __init__(self, runner: Runner, clock, cache: MemoryCache | FileCache, min_age: float = MIN_AGE):
        self.runner, self.clock, self.cache, self.min_age = runner, clock, cache, min_age
        self.fetches = 0

    def refresh_in(self, fleet_project: str) -> float:
        """Seconds until the shared answer for `fleet_project` may be fetched again."""
        entry = self.cache.get(fleet_project)
        return 0.0 if entry is None else max(0.0, entry[0] + self.min_age - self.clock())

    def describe(self, fleet_project: str, fresh: bool = False) -> Any:
        """The shared answer while it is younger than `min_age`; `fresh`: ask the fleet now
        (and share that answer)."""
        entry = self.cache.get(fleet_project)
        if entry and not fresh and 0 <= self.clock() - entry[0] < self.min_age:
            return entry[1]
        with self.cache.lock(fleet_project):
            entry = self.cache.get(fleet_project)  # another poller may have just fetched it
            if entry and not fresh and 0 <= self.clock() - entry[0] < self.min_age:
                return entry[1]
            data = run_json(self.runner, gcloud.describe_mesh(fleet_project))
            self.fetches += 1
            self.cache.put(fleet_project, self.clock(), data)
            return data


def reader_of(tools: Any) -> "FleetReader":
    """The fleet reader of a step's tools (made once, kept on them), sharing answers with
    every step polling the same project through `tools.cache` (the per-user file cache
    when None)."""
    if tools.cache is None:
        tools.cache = FileCache.private()
    if getattr(tools, "_reader", None) is None:
        tools._reader = FleetReader(tools.runner, tools.wall, tools.cache)
    return tools._reader


def describe_mesh(tools: Any, fleet_project: str) -> Any:
    """`gcloud container fleet mesh describe` of the fleet, through the shared reader."""
    return reader_of(tools).describe(fleet_project)
