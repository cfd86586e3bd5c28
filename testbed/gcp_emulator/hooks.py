"""The in-cluster side of managed Cloud Service Mesh, as the emulator sees it.

The fleet API (gkehub `servicemesh` feature) only reports on the cluster; what happens in
the cluster (the control plane appearing, sidecars being injected) belongs to whoever
models the cluster (testbed/managed_mesh.py). The emulator calls these hooks at the
moments tests/fake_world.py acts on its FakeCluster:
- `provision(revision)`: provisioning finished (fake_world `_mesh_entry` calls
  `install_control_plane(revision)`), once per switch to automatic management;
- `on_manual()`: management became MANAGEMENT_MANUAL (fake_world sets
  `reconciles_left = 1`: the fleet re-creates the mesh CRDs once more; practitioners'
  reports, no public source found);
- `installed_revision()`: the control plane revision running in the cluster, if any
  (fake_world `FakeCluster.installed_revision`);
- `injected_pods(revision)`: how many running pods carry that revision's sidecar (the data
  plane is DISABLED until one runs: the June 2025 Zenn write-up
  'GKE Service Mesh のリリースチャンネル変更と再インストール手順').
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class MeshHooks(Protocol):
    def provision(self, revision: str) -> None: ...

    def on_manual(self) -> None: ...

    def installed_revision(self) -> str | None: ...

    def injected_pods(self, revision: str) -> int: ...


class InMemoryMeshHooks:
    """A trivial cluster: provisioning installs the revision; pods are a number per revision.

    Records every call in `calls` so tests can assert when the emulator called what."""

    def __init__(self, installed: str | None = None, pods: dict[str, int] | None = None):
        self.installed = installed
        self.pods: dict[str, int] = dict(pods or {})
        self.calls: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def provision(self, revision: str) -> None:
        with self._lock:
            self.calls.append(("provision", revision))
            self.installed = revision

    def on_manual(self) -> None:
        with self._lock:
            self.calls.append(("on_manual",))

    def installed_revision(self) -> str | None:
        return self.installed

    def injected_pods(self, revision: str) -> int:
        return self.pods.get(revision, 0)
