"""gke-mesh: a GKE cluster's release channel and its managed Cloud Service Mesh, as code."""

import pulumi

from components import promotion
from components.platform import MeshPlatform
from components.settings import load_settings

settings = load_settings()
promotion.enforce(settings)
platform = MeshPlatform("gke-mesh", settings)

pulumi.export("release_channel", settings.release_channel)
pulumi.export("clusters", platform.cluster_outputs())
