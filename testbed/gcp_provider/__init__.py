"""A stand-in `pulumi-resource-gcp` provider plugin for the testbed, in Python.

The real pulumi-gcp plugin cannot be had here, so the engine runs this instead: a gRPC
ResourceProvider (server.py) serving exactly what gke-mesh uses (resources/: projects
Service, gkehub Feature and FeatureMembership, and the getMembership / getCluster /
getProject functions) against Google's standard REST paths at one base URL
(GKE_MESH_TESTBED_GCP_URL; rest.py). Each rule cites its source beside the code.

    folder = install_launcher(tmp)                  # writes tmp/pulumi-resource-gcp
    os.environ["PATH"] = f"{folder}:{os.environ['PATH']}"

The engine then finds `pulumi-resource-gcp` on PATH (it warns "using ... from $PATH")
when automatic plugin acquisition is off and no gcp plugin is installed in PULUMI_HOME.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BINARY = "pulumi-resource-gcp"


def install_launcher(folder: Path | str, python: str | None = None) -> Path:
    """Write `folder/pulumi-resource-gcp`, a shell script running this package with
    `python` (default: the running interpreter) and the repository on PYTHONPATH.
    Returns the folder (to put on PATH)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / BINARY
    launcher.write_text(
        "#!/bin/sh\n"
        "# stand-in pulumi-resource-gcp (testbed/gcp_provider), written by install_launcher\n"
        f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f"exec {shlex.quote(python or sys.executable)} -m testbed.gcp_provider \"$@\"\n")
    launcher.chmod(0o755)
    return folder
