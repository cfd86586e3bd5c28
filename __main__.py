"""gke-mesh: a GKE cluster's release channel and its managed Cloud Service Mesh, as code."""

import pulumi

from components import promotion
from components.platform import MeshPlatform
from components.settings import load_settings


async def main() -> dict:
    settings = load_settings()
    await promotion.enforce(settings)  # reads only; nothing is registered before it passes
    platform = MeshPlatform("gke-mesh", settings)
    return {"release_channel": settings.release_channel, "clusters": platform.cluster_outputs()}


pulumi.run(main)
