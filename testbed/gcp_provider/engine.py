"""Run an inline Pulumi program under the REAL engine with this stand-in gcp provider.

The pieces are testbed/engine_chain.py's: the CLI from build_pulumi.sh, the Python SDK
serving the language runtime in-process (Automation API inline program, so no
pulumi-language-python binary), a file:// backend in a scratch folder, plugin acquisition
and update checks off, proxies unset. The gcp provider is this package's launcher, put
first on PATH; it talks to the REST API at `api_url` (GKE_MESH_TESTBED_GCP_URL).

Run it inside engine_chain.network_cut_argv() (a network namespace with only loopback) so
nothing can leave the machine; then the REST API must be served from the same process
(or namespace), on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from testbed import engine_chain
from testbed.gcp_provider import install_launcher
from testbed.gcp_provider.rest import TOKEN_ENV, URL_ENV
from testbed.gcp_provider.server import LOG_ENV

ROOT = engine_chain.ROOT
CHANGE_OPS = ("create", "update", "delete", "replace", "create-replacement", "delete-replaced", "import", "import-replacement",
              "discard", "discard-replaced", "read", "read-replacement", "refresh")


def missing_binaries() -> list[str]:
    """What the real-engine run lacks (empty: ready): only the CLI is needed."""
    try:
        path = engine_chain.pulumi_bin() / "pulumi"
    except (OSError, subprocess.CalledProcessError) as error:
        return [f"pulumi ({error})"]
    return [] if os.access(path, os.X_OK) else [f"{path} (build it: bash testbed/build_pulumi.sh)"]


def open_stack(program: Callable[[], None], scratch: Path, api_url: str, config: dict[str, str],
               project: str = "gke-mesh-gcp-provider", stack_name: str = "dev",
               api_urls: dict[str, str] | None = None, token: str | None = None):
    """A fresh stack in `scratch` whose engine runs the stand-in gcp provider against
    `api_url` (and `api_urls`: per-API bases, e.g. {"gkehub": URL + "gkehub/"}), sending
    `token` as the Bearer token when given."""
    from pulumi import automation as auto

    home, state, work, bin_dir = (scratch / "pulumi-home", scratch / "state", scratch / "project", scratch / "bin")
    for folder in (home, state, work):
        folder.mkdir(parents=True, exist_ok=True)
    install_launcher(bin_dir)
    cli_bin = engine_chain.pulumi_bin()
    for var in engine_chain.PROXY_VARS:
        os.environ.pop(var, None)
    env = {**engine_chain.engine_env(home, state, [bin_dir, cli_bin], "gcp-provider"),
           URL_ENV: api_url, LOG_ENV: str(scratch / "provider-calls.jsonl")}
    env.update({f"{URL_ENV}_{api.upper()}": url for api, url in (api_urls or {}).items()})
    if token or TOKEN_ENV in os.environ:
        env[TOKEN_ENV] = token or os.environ[TOKEN_ENV]
    os.environ.update(env)  # this process too: the inline program and `pulumi login`
    login = subprocess.run([str(cli_bin / "pulumi"), "login", f"file://{state}"], capture_output=True, text=True, env=os.environ)
    if login.returncode != 0:
        raise RuntimeError(f"pulumi login failed: {login.stderr.strip()}")
    stack = auto.create_or_select_stack(
        stack_name=stack_name, project_name=project, program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(work), pulumi_home=str(home), env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(cli_bin.parent), skip_version_check=True),
            project_settings=auto.ProjectSettings(name=project, runtime="python", main=str(ROOT))))
    for key, value in config.items():
        stack.set_config(key, auto.ConfigValue(value=value))
    return stack


def run(stack, op: str, program: Callable[[], None] | None = None) -> dict[str, Any]:
    """One `up`, `preview` or `destroy`: ok, error (last lines), seconds, the engine's
    change summary and its per-resource steps [(type, name, op)] other than `same`."""
    from pulumi import automation as auto

    steps: list[list[str]] = []

    def on_event(event) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and str(pre.metadata.op.value) != "same":
            steps.append([pre.metadata.type, pre.metadata.urn.split("::")[-1], str(pre.metadata.op.value)])

    if program is not None:
        stack.workspace.program = program
    started, ok, error, summary = time.monotonic(), True, "", {}
    try:
        if op == "up":
            result = stack.up(program=program, on_event=on_event, color="never")
            summary = dict(result.summary.resource_changes or {})
        elif op == "preview":
            result = stack.preview(program=program, on_event=on_event, color="never", diff=True)
            summary = {str(k.value if hasattr(k, "value") else k): v for k, v in (result.change_summary or {}).items()}
        elif op == "destroy":
            result = stack.destroy(on_event=on_event, color="never")
            summary = dict(result.summary.resource_changes or {})
        else:
            raise ValueError(f"unknown op {op!r}")
    except auto.CommandError as failure:
        ok = False
        error = "\n".join(line for line in str(failure).splitlines() if line.strip())[-3000:]
    return {"op": op, "ok": ok, "error": error, "seconds": round(time.monotonic() - started, 2),
            "summary": summary, "steps": steps, "changes": sum(v for k, v in summary.items() if k != "same")}
