"""Run the real Pulumi program under Pulumi's mocks, recording every registration.

This is what `meshops plan` and the component tests use: the same `__main__.py` that
`pulumi up` runs, with a monitor that records each RegisterResource/ReadResource
request (dependencies, parent, options, inputs) and mocks that echo inputs back. It
runs as a preview, so values only the cloud knows stay unknown, as in `pulumi preview`.
No cloud, no Pulumi CLI.
"""

from __future__ import annotations

import asyncio
import runpy
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pulumi
from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "gke-mesh"
ORGANIZATION = "organization"
"""The organization a file or self-hosted backend reports (stack names read organization/project/stack)."""

_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"


def plain(value: Any) -> Any:
    """A registered input as plain JSON: secrets as "[secret]", unknowns as "<unknown>"."""
    if value == _UNKNOWN or isinstance(value, pulumi.output.Unknown):
        return "<unknown>"
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG or (sig == _OUTPUT_SIG and value.get("secret")):
            return "[secret]"
        if sig == _RESOURCE_SIG:
            return value.get("urn", "<unknown>")
        if sig == _OUTPUT_SIG:
            return plain(value["value"]) if "value" in value else "<unknown>"
        return {k: plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Registration:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    dependencies: list[str]
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    read: bool = False


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that keeps what the SDK sent, not just what the mocks answered."""

    def __init__(self, answers: mocks.Mocks):
        super().__init__(answers)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Registration(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent,
                custom=request.custom, dependencies=sorted(set(request.dependencies)),
                inputs=plain(json_format.MessageToDict(request.object)),
                options={
                    "protect": request.protect if request.HasField("protect") else False,
                    "retainOnDelete": request.retainOnDelete if request.HasField("retainOnDelete") else False,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "ignoreChanges": list(request.ignoreChanges),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    "importId": request.importId,
                },
            ))
        return response

    def ReadResource(self, request):
        response = super().ReadResource(request)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent, custom=True,
            dependencies=sorted(set(request.dependencies)),
            inputs=plain(json_format.MessageToDict(request.properties)), read=True,
            options={"id": request.id},
        ))
        return response


class EchoMocks(mocks.Mocks):
    """Resources echo their inputs (plus what `extra_outputs` adds); invokes answer from
    `invokes` (token -> result)."""

    def __init__(self, invokes: dict[str, Callable[[dict], dict]] | None = None,
                 extra_outputs: Callable[[mocks.MockResourceArgs], dict] | None = None,
                 stack_outputs: dict[str, dict] | None = None):
        self.invokes = invokes or {}
        self.extra_outputs = extra_outputs
        self.stack_outputs = stack_outputs or {}

    def new_resource(self, args: mocks.MockResourceArgs):
        if args.typ == "pulumi:pulumi:StackReference":
            # What `pulumi stack output --json` printed for that stack, or unknown offline.
            return args.name, {"name": args.name, "outputs": self.stack_outputs.get(args.name, _UNKNOWN)}
        # A command's outputs (stdout above all) exist only once it has run; echoing its
        # inputs back would only cost time, as nothing reads them.
        outputs = {} if args.typ == "command:local:Command" else dict(args.inputs)
        if self.extra_outputs:
            outputs.update(self.extra_outputs(args))
        return (args.resource_id or f"{args.name}-id"), outputs

    def call(self, args: mocks.MockCallArgs):
        answer = self.invokes.get(args.token)
        return (answer(args.args) if answer else {}), []


# Values only the cloud knows. Invoke results are typed, so they cannot be unknown here:
# they are shown as <placeholder> tokens, as the plan shows runtime-discovered values.
OFFLINE_INVOKES: dict[str, Callable[[dict], dict]] = {
    "gcp:organizations/getProject:getProject": lambda args: {"projectId": args.get("projectId"), "number": "<project-number>"},
    "gcp:container/getCluster:getCluster": lambda args: {"name": args.get("name"), "endpoint": "<endpoint>",
                                                         "masterAuths": [{"clusterCaCertificate": "<cluster-ca>"}]},
}


@dataclass
class ProgramRun:
    registrations: list[Registration]
    outputs: dict[str, Any]


class SecureValueError(ValueError):
    """A stack file value is encrypted; only the Pulumi CLI can decrypt it."""


def stack_config(values: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: namespaced keys, string values,
    objects and lists as JSON text; `defaults` (from Pulumi.yaml) fill missing keys."""
    import json

    config = {}
    for key, value in {**(defaults or {}), **values}.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise SecureValueError(f"{full}: is encrypted (secure:); the offline plan cannot decrypt it")
        if isinstance(value, str):
            config[full] = value
        elif isinstance(value, bool):
            config[full] = "true" if value else "false"
        else:
            config[full] = json.dumps(value)
    return config


def run_program(config: dict[str, str], stack: str, invokes: dict[str, Callable[[dict], dict]] | None = None,
                monitor: RecordingMonitor | None = None, preview: bool = True,
                stack_outputs: dict[str, dict] | None = None, main_file: Path = ROOT / "__main__.py") -> ProgramRun:
    """Run `__main__.py` under mocks with `config` (full keys, string values).

    Pass your own `monitor` to inspect what was registered even when the run fails;
    `preview=False` simulates an `up`, where resources' outputs are known.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    monitor = monitor or RecordingMonitor(EchoMocks())
    monitor.mocks.invokes = {**OFFLINE_INVOKES, **(invokes or {})}
    if stack_outputs is not None:
        monitor.mocks.stack_outputs = stack_outputs
    # A fresh event loop per run, made before the root stack exists: tasks a failed run
    # left behind must not leak into the next.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The mock monitor runs in executor threads and needs an event loop in each; give
    # them loops we can close, or their finalizers print errors after the run.
    thread_loops: list[asyncio.AbstractEventLoop] = []

    def thread_loop() -> None:
        thread_loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(thread_loops[-1])

    loop.set_default_executor(ThreadPoolExecutor(initializer=thread_loop))
    runtime_settings.reset_options()
    mocks.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, organization=ORGANIZATION)
    runtime_config.set_all_config(dict(config))
    outputs: dict[str, Any] = {}

    async def program() -> None:
        # `pulumi.run(main)` registers the program's async entry point; the mocks' root
        # stack has already finished its own, so the entry is taken here and awaited
        # after the module has run, as the SDK's run_in_stack does.
        entries: list[Callable[[], Any]] = []
        sdk_run, pulumi.run = pulumi.run, entries.append
        try:
            runpy.run_path(str(main_file), run_name="__main__")
        finally:
            pulumi.run = sdk_run
        root = runtime_settings.get_root_resource()
        for entry in entries:
            for name, value in (await entry() or {}).items():
                pulumi.export(name, value)
        resolved = await pulumi.Output.from_input(dict(root.outputs)).future(with_unknowns=True)
        outputs.update(plain(resolved) if resolved is not None else {})

    try:
        runtime_settings.SETTINGS.rpc_manager.clear()
        runtime_settings.SETTINGS.outputs.clear()
        _sync_await(run_pulumi_func(program))
    except BaseException:
        # The error propagates from here; the SDK's other outputs that carry the same
        # error would otherwise each print "Future exception was never retrieved".
        loop.set_exception_handler(lambda _loop, context: None)
        raise
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_default_executor())
        for worker_loop in thread_loops:
            worker_loop.close()
        loop.close()
        asyncio.set_event_loop(None)
    return ProgramRun(monitor.registrations, outputs)
