"""The stand-in `pulumi-resource-gcp`: a gRPC ResourceProvider on the stubs shipped in the
Pulumi Python SDK (pulumi.runtime.proto), serving the few gcp types gke-mesh uses
(resources/) against Google's REST paths at GKE_MESH_TESTBED_GCP_URL (rest.py).

Plugin protocol (as the engine starts any resource plugin): argv[1] is the engine's
address (flags such as --logtostderr may follow and are ignored); the plugin listens on
127.0.0.1:0, prints the port alone on one stdout line, and serves until it is killed.
Nothing else goes to stdout. GKE_MESH_TESTBED_GCP_PROVIDER_LOG, when set, names a file
that gets one JSON line per call (method, type, urn, id, preview).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import traceback
from concurrent import futures
from importlib import metadata
from typing import Any, Callable

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from testbed.gcp_provider.resources import INVOKES, RESOURCES, Resource
from testbed.gcp_provider.resources.base import CheckError, Config
from testbed.gcp_provider.resources.invokes import InvokeError
from testbed.gcp_provider.rest import ApiError, Rest
from testbed.gcp_provider.values import from_struct, plain, same, to_struct

LOG_ENV = "GKE_MESH_TESTBED_GCP_PROVIDER_LOG"
Diff = provider_pb2.DiffResponse
Kind = provider_pb2.PropertyDiff


def plugin_version() -> str:
    """The installed pulumi_gcp's version: the engine asks for the plugin version the SDK names."""
    try:
        return metadata.version("pulumi_gcp")
    except metadata.PackageNotFoundError:
        return "10.2.0"


def type_of(request: Any) -> str:
    """The resource type: request.type, else the urn's last `$` part
    (urn:pulumi:<stack>::<project>::<parent types $ separated>$<type>::<name>)."""
    if getattr(request, "type", ""):
        return request.type
    return request.urn.split("::")[2].split("$")[-1] if request.urn.count("::") >= 3 else ""


def _log(method: str, request: Any) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = {"method": method, "type": type_of(request) if hasattr(request, "urn") else getattr(request, "tok", ""),
            "urn": getattr(request, "urn", ""), "id": getattr(request, "id", ""), "preview": getattr(request, "preview", False)}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def rpc(method: Callable) -> Callable:
    """Log the call and turn failures into a gRPC status with a readable message."""

    @functools.wraps(method)
    def wrapper(self: "GcpProvider", request: Any, context: grpc.ServicerContext) -> Any:
        _log(method.__name__, request)
        try:
            return method(self, request, context)
        except (ApiError, InvokeError, ValueError) as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except NotImplementedError as error:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(error) or method.__name__)
        except Exception:  # a bug here: show where
            context.abort(grpc.StatusCode.INTERNAL, traceback.format_exc()[-2000:])

    return wrapper


class GcpProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, rest_factory: Callable[[str], Rest] = lambda api: Rest(api=api)):
        self.config = Config()
        self.rest_factory = rest_factory
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def _resource(self, request: Any) -> Resource:
        token = type_of(request)
        if token not in RESOURCES:
            raise NotImplementedError(f"the stand-in gcp provider does not implement {token}")
        return RESOURCES[token]

    @rpc
    def Handshake(self, request, context):
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True, accept_outputs=False)

    @rpc
    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=plugin_version())

    @rpc
    def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema=json.dumps({"name": "gcp", "version": plugin_version()}))

    @rpc
    def GetMapping(self, request, context):
        return provider_pb2.GetMappingResponse(provider="", data=b"")

    @rpc
    def GetMappings(self, request, context):
        return provider_pb2.GetMappingsResponse()

    @rpc
    def Cancel(self, request, context):
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ provider config
    @rpc
    def CheckConfig(self, request, context):
        return provider_pb2.CheckResponse(inputs=request.news)

    @rpc
    def DiffConfig(self, request, context):
        olds, news = from_struct(request.olds), from_struct(request.news)
        changed = sorted(k for k in set(olds) | set(news) if not same(olds.get(k), news.get(k)))
        return Diff(changes=Diff.DIFF_SOME if changed else Diff.DIFF_NONE, diffs=changed)

    @rpc
    def Configure(self, request, context):
        args = plain(from_struct(request.args))
        variables = {k.split(":")[-1]: v for k, v in request.variables.items()}  # gcp:config:project -> project
        values = {**variables, **args}
        with self._lock:
            self.config = Config(project=str(values.get("project") or ""), values=values)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True, acceptOutputs=False)

    # ------------------------------------------------------------------ resources
    @rpc
    def Check(self, request, context):
        resource = self._resource(request)
        news = from_struct(request.news)
        try:
            checked = resource.check(from_struct(request.olds), news, self.config)
        except CheckError as error:
            failures = [provider_pb2.CheckFailure(property=p, reason=r) for p, r in error.failures]
            return provider_pb2.CheckResponse(inputs=request.news, failures=failures)
        return provider_pb2.CheckResponse(inputs=to_struct(checked))

    @rpc
    def Diff(self, request, context):
        resource = self._resource(request)
        old_inputs = from_struct(request.old_inputs)
        olds = old_inputs or from_struct(request.olds)  # the engine sends old_inputs; older ones only olds (outputs)
        result = resource.diff(olds, from_struct(request.news))
        news = from_struct(request.news)
        detailed = {}
        for name in result.changes:
            if name not in olds:
                kind = Kind.ADD_REPLACE if name in result.replaces else Kind.ADD
            elif name not in news:
                kind = Kind.DELETE_REPLACE if name in result.replaces else Kind.DELETE
            else:
                kind = Kind.UPDATE_REPLACE if name in result.replaces else Kind.UPDATE
            detailed[name] = provider_pb2.PropertyDiff(kind=kind, inputDiff=True)
        return Diff(changes=Diff.DIFF_SOME if result.changed else Diff.DIFF_NONE, replaces=result.replaces,
                    diffs=result.changes, deleteBeforeReplace=False, detailedDiff=detailed, hasDetailedDiff=True)

    @rpc
    def Create(self, request, context):
        resource = self._resource(request)
        inputs = from_struct(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(id="", properties=to_struct(resource.preview_outputs(inputs)))
        id_, outputs = resource.create(self.rest_factory(resource.api), inputs, self.config)
        return provider_pb2.CreateResponse(id=id_, properties=to_struct(outputs))

    @rpc
    def Read(self, request, context):
        resource = self._resource(request)
        state = {**from_struct(request.inputs), **from_struct(request.properties)}
        found = resource.read(self.rest_factory(resource.api), request.id, state, self.config)
        if found is None:
            return provider_pb2.ReadResponse()  # empty id: the resource is gone
        inputs, outputs = found
        return provider_pb2.ReadResponse(id=str(outputs.get("id") or request.id), properties=to_struct(outputs),
                                         inputs=to_struct(inputs))

    @rpc
    def Update(self, request, context):
        resource = self._resource(request)
        olds, news = from_struct(request.olds), from_struct(request.news)
        old_inputs = from_struct(request.old_inputs) or olds
        if request.preview:
            return provider_pb2.UpdateResponse(properties=to_struct({**resource.preview_outputs(news, olds), "id": request.id}))
        outputs = resource.update(self.rest_factory(resource.api), request.id, old_inputs, news, self.config)
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    @rpc
    def Delete(self, request, context):
        resource = self._resource(request)
        state = {**from_struct(request.old_inputs), **from_struct(request.properties)}
        resource.delete(self.rest_factory(resource.api), request.id, state, self.config)
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ functions
    @rpc
    def Invoke(self, request, context):
        if request.tok not in INVOKES:
            raise NotImplementedError(f"the stand-in gcp provider does not implement {request.tok}")
        api, function = INVOKES[request.tok]
        result = function(self.rest_factory(api), plain(from_struct(request.args)), self.config)
        return provider_pb2.InvokeResponse(**{"return": to_struct(result)})


def serve(argv: list[str]) -> int:
    """Serve until killed. argv: [engine address, flags...] (the address is not needed:
    this provider never calls back into the engine)."""
    options = [("grpc.max_receive_message_length", 400 * 1024 * 1024), ("grpc.max_send_message_length", 400 * 1024 * 1024)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(GcpProvider(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()
    return 0
