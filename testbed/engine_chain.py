"""One cluster's migration chain through the REAL Pulumi engine, as a sequence of program
versions, for tests/test_engine_differential.py.

    python -m testbed.engine_chain --sequence seq.json --out result.json --scratch DIR

What runs:
- the Pulumi CLI/engine built by testbed/build_pulumi.sh (pulumi v3.274.1, from Go modules);
- the stand-in provider testbed/command-provider (testbed/build_command_provider.sh),
  found as `pulumi-resource-command` on PATH (the engine warns "using ... from $PATH");
- the program, as a Python Automation API *inline* program: the Python SDK serves the
  language runtime from this process (LanguageServer on 127.0.0.1) and the CLI is started
  with `--client=127.0.0.1:<port>`, so no pulumi-language-python binary is involved
  (it is not obtainable from the Go module proxy).

The program is the project's own components: `components.migration.MigrationChain` and
`components.channel.ReleaseChannel`, wired as components/platform.py wires them for one
cluster (the release channel after the chain's last step before it; the rest of the chain
after the channel; no fleet/management resources). The one change: `command_line`, which
makes every command text `python3 -m meshops <words>`, is replaced in both modules by
`python3 -m testbed.recorder <words>` (testbed/recorder.py), so each registered
create/update/delete text is the program's with that prefix swapped.

A sequence entry (JSON): {"op": "up"|"destroy", "ctx": {StepContext fields},
"options": {Options fields}, "rerun": "", "reregister": true, "in_program": true,
"faults": [["guard", "delete"], ...]}. The result, per entry: ok, error (last lines),
ran (recorder lines of this operation), engine_ops (the engine's own steps on
command:local:Command resources, from its event stream) and state (every Command in the
exported stack: stdout, environment, pending delete).

Nothing leaves the machine: the backend is a local folder (file://), plugin acquisition
and update checks are off, proxies are unset, and the test runs this module under
`unshare -n` with only loopback up when it can (see `network_cut_argv`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMMAND_TYPE = "command:local:Command"
PROJECT = "gke-mesh-differential"
STACK = "dev"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# ---------------------------------------------------------------------------- binaries
def _script_output(script: str, *args: str) -> str:
    done = subprocess.run(["bash", str(ROOT / "testbed" / script), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def pulumi_bin() -> Path:
    """Folder of the built `pulumi` (build_pulumi.sh --print-bin; nothing is built)."""
    return Path(_script_output("build_pulumi.sh", "--print-bin"))


def provider_bin() -> Path:
    """Folder of the built stand-in `pulumi-resource-command` (nothing is built)."""
    return Path(_script_output("build_command_provider.sh", "--print-bin"))


def missing_binaries() -> list[str]:
    """What the real-engine run lacks, as readable lines (empty: ready)."""
    missing = []
    for binary, folder, script in (("pulumi", pulumi_bin, "build_pulumi.sh"),
                                   ("pulumi-resource-command", provider_bin, "build_command_provider.sh")):
        try:
            path = folder() / binary
            if not os.access(path, os.X_OK):
                missing.append(f"{path} (build it: bash testbed/{script})")
        except (OSError, subprocess.CalledProcessError) as error:
            missing.append(f"{binary} ({error})")
    return missing


def engine_env(home: Path, state: Path, first_on_path: list[Path], passphrase: str,
               base_path: str | None = None) -> dict[str, str]:
    """The engine's environment: a local file backend, plugins only from PATH
    (`first_on_path` first), no update check, no plugin download, the project on PYTHONPATH."""
    path = os.pathsep.join([*(str(p) for p in first_on_path), base_path or os.environ.get("PATH", "/usr/bin:/bin")])
    return {
        "PATH": path,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PYTHONPATH": str(ROOT),
    }


def network_cut_argv() -> tuple[list[str], str]:
    """argv prefix running a command in a new network namespace with only loopback up
    (the engine and its plugins talk gRPC on 127.0.0.1, so lo must be up), and a note.
    Falls back to no prefix (everything on loopback, proxies unset) when namespaces are
    not allowed here."""
    script = 'ip link set lo up && exec "$0" "$@"'
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        if shutil.which("unshare") and shutil.which("ip"):
            probe = subprocess.run([*prefix, "sh", "-c", script, "true"], capture_output=True, text=True)
            if probe.returncode == 0:
                return [*prefix, "sh", "-c", script], f"network cut: {' '.join(prefix)} (only lo up)"
    return [], "network NOT cut (unshare unavailable): backend, plugins and program on 127.0.0.1 only, proxies unset"


# ---------------------------------------------------------------------------- program
def program_for(version: dict[str, Any]):
    """The inline program for one version: the project's components for one cluster."""

    def program() -> None:
        import components.channel as channel_module
        import components.migration as migration_module
        import components.stack_key as stack_key_module
        from components.channel import ReleaseChannel
        from components.migration import MigrationChain, register
        from meshops.context import Options, StepContext
        from testbed.recorder import LAUNCHER

        def recorder_line(words: str) -> str:
            return LAUNCHER + words

        # The only change to the program: the command texts' launcher (see module doc).
        migration_module.command_line = recorder_line
        channel_module.command_line = recorder_line
        stack_key_module.command_line = recorder_line
        if not version.get("in_program", True):
            return
        ctx = StepContext(**version["ctx"])
        options = Options(**version.get("options", {}))
        # components/platform.py, for one cluster with the migration enabled and no fleet
        # resources before it: chain, channel after chain.last_before_channel, the rest.
        # components/platform.py, MeshPlatform: the stack's key, once per stack.
        key = register("stack-key", stack_key_module.stack_key_spec(), {}, None, [])
        chain = MigrationChain(f"{ctx.cluster}-migration", ctx, options, version.get("reregister", True),
                               version.get("rerun", ""), key, depends_on=[])
        channel = ReleaseChannel(f"{ctx.cluster}-channel", ctx, [chain.last_before_channel], chain.steps)
        chain.continue_after(channel.command, [])

    return program


# ---------------------------------------------------------------------------- state
def _plain(value: Any) -> Any:
    """A value from `stack export --show-secrets`, secrets unwrapped."""
    if isinstance(value, dict) and value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
        return json.loads(value["plaintext"]) if "plaintext" in value else "<secret>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def resource_name(urn: str, cluster: str) -> str:
    name = urn.split("::")[-1]
    return name[len(cluster) + 1:] if name.startswith(cluster + "-") else name


def commands_in_state(deployment: dict[str, Any] | None, cluster: str) -> list[dict[str, Any]]:
    out = []
    for res in (deployment or {}).get("resources", []) or []:
        if res.get("type") != COMMAND_TYPE:
            continue
        outputs = _plain(res.get("outputs", {}))
        out.append({"name": resource_name(res["urn"], cluster), "id": res.get("id"), "pending_delete": bool(res.get("delete")),
                    "stdout": outputs.get("stdout", ""), "environment": outputs.get("environment", {}) or {},
                    "triggers": outputs.get("triggers")})
    return out


# ---------------------------------------------------------------------------- run
def run_sequence(sequence: list[dict[str, Any]], scratch: Path) -> dict[str, Any]:
    from pulumi import automation as auto

    scratch.mkdir(parents=True, exist_ok=True)
    home, state, work = scratch / "pulumi-home", scratch / "state", scratch / "project"
    for folder in (home, state, work):
        folder.mkdir(parents=True, exist_ok=True)
    log, faults = scratch / "recorder.log", scratch / "faults"
    log.touch()
    cli_bin, cmd_bin = pulumi_bin(), provider_bin()
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    env = {**engine_env(home, state, [cmd_bin, cli_bin], "differential"),
           "TESTBED_RECORDER_LOG": str(log), "TESTBED_RECORDER_FAULTS": str(faults)}
    os.environ.update(env)  # this process too (the inline program, `pulumi login`)
    login = subprocess.run([str(cli_bin / "pulumi"), "login", f"file://{state}"], capture_output=True, text=True, env=os.environ)
    if login.returncode != 0:
        raise RuntimeError(f"pulumi login failed: {login.stderr.strip()}")
    version_line = subprocess.run([str(cli_bin / "pulumi"), "version"], capture_output=True, text=True).stdout.strip()

    first = sequence[0]
    stack = auto.create_or_select_stack(
        stack_name=STACK, project_name=PROJECT, program=program_for(first),
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(work), pulumi_home=str(home), env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(cli_bin.parent), skip_version_check=True),
            # `main` is set on purpose: for an inline program the Automation API would set it to
            # this process's cwd (pulumi/automation/_local_workspace.py: _inline_source_stack_helper),
            # and the engine starts providers in `main` (engine/project.go: getPwdMain), so every
            # Command would run there. ROOT is where `pulumi up` runs them in production (the
            # folder of Pulumi.yaml; ENGINE_RULES h).
            project_settings=auto.ProjectSettings(name=PROJECT, runtime="python", main=str(ROOT))))
    results = []
    for number, version in enumerate(sequence):
        faults.write_text("".join(f"{r} {a}\n" for r, a in version.get("faults", [])))
        offset = len(log.read_text().splitlines())
        events: list[tuple[str, str]] = []
        cluster = version["ctx"]["cluster"]

        def on_event(event, cluster=cluster, events=events) -> None:
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None and pre.metadata.type == COMMAND_TYPE and str(pre.metadata.op.value) != "same":
                events.append((resource_name(pre.metadata.urn, cluster), str(pre.metadata.op.value)))
            failed = getattr(event, "res_op_failed_event", None)
            if failed is not None and failed.metadata.type == COMMAND_TYPE:
                events.append((resource_name(failed.metadata.urn, cluster), f"failed:{failed.metadata.op.value}"))

        started, ok, error = time.monotonic(), True, ""
        try:
            if version["op"] == "up":
                stack.workspace.program = program_for(version)
                stack.up(program=program_for(version), on_event=on_event, color="never")
            elif version["op"] == "destroy":
                stack.destroy(on_event=on_event, color="never")
            else:
                raise ValueError(f"unknown op {version['op']!r}")
        except auto.CommandError as failure:
            ok = False
            text = str(failure)
            error = "\n".join(line for line in text.splitlines() if line.strip())[-1500:]
        seconds = round(time.monotonic() - started, 2)
        lines = log.read_text().splitlines()[offset:]
        ran = [line.split(" ", 2) for line in lines]
        deployment = stack.export_stack().deployment
        results.append({"number": number, "op": version["op"], "ok": ok, "error": error, "seconds": seconds,
                        "ran": [[r[0], r[1], r[2] if len(r) > 2 else ""] for r in ran],
                        "engine_ops": [list(e) for e in events], "state": commands_in_state(deployment, cluster)})
    return {"pulumi_version": version_line, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scratch", required=True, type=Path)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        result = run_sequence(json.loads(args.sequence.read_text()), args.scratch)
    except Exception:  # report it to the test, which shows it
        args.out.write_text(json.dumps({"crash": traceback.format_exc()}))
        return 1
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
