"""A loopback emulator of the Google APIs the real gcloud calls for gke-mesh (see README.md)."""

from .hooks import InMemoryMeshHooks, MeshHooks
from .routing import ApiError
from .server import GcpEmulator

__all__ = ["GcpEmulator", "MeshHooks", "InMemoryMeshHooks", "ApiError"]
