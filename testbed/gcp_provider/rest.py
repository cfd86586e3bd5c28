"""A tiny JSON client for Google's REST APIs at one base URL (the testbed's emulator or a
test's fake), standard library only.

GKE_MESH_TESTBED_GCP_URL        base URL, e.g. http://127.0.0.1:8123/ (required to call anything)
GKE_MESH_TESTBED_GCP_URL_<API>  optional base of one API (SERVICEUSAGE, GKEHUB, CONTAINER,
                                CLOUDRESOURCEMANAGER), e.g. http://127.0.0.1:8123/gkehub/ for an
                                emulator serving each API under its own prefix (testbed/gcp_emulator)
GKE_MESH_TESTBED_GCP_TOKEN      sent as `Authorization: Bearer <token>` when set

Every API is reached with its standard path (`v1/projects/...`) under its base; nothing
else is ever contacted.
Long-running operations (google.longrunning.Operation: `name`, `done`, `error`,
`response`) are polled at `v1/<operation name>` until done.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

URL_ENV = "GKE_MESH_TESTBED_GCP_URL"
TOKEN_ENV = "GKE_MESH_TESTBED_GCP_TOKEN"


class ApiError(Exception):
    """An HTTP error answer: status and Google's error message (error.message) if any."""

    def __init__(self, status: int, message: str, method: str = "", path: str = ""):
        super().__init__(f"{method} {path}: HTTP {status}: {message}".strip())
        self.status = status
        self.message = message


class Rest:
    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30.0,
                 poll_seconds: float = 0.05, operation_timeout: float = 120.0, api: str = ""):
        base = base_url if base_url is not None else base_for(api)
        if not base:
            raise ApiError(0, f"{URL_ENV} is not set: the stand-in gcp provider has no API to talk to")
        self.base = base if base.endswith("/") else base + "/"
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout, self.poll_seconds, self.operation_timeout = timeout, poll_seconds, operation_timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, str] | None = None) -> dict[str, Any]:
        url = self.base + path.lstrip("/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        # The base URL is loopback; never let a proxy variable route it elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                text = response.read().decode() or "{}"
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _message(error.read().decode(errors="replace")), method, path) from None
        except urllib.error.URLError as error:
            raise ApiError(0, f"cannot reach {self.base}: {error.reason}", method, path) from None
        return json.loads(text)

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        return self.call("GET", path, query=query)

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        """GET, with 404 as None."""
        try:
            return self.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def wait(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Poll a long-running operation to its end; its `response` (or {}), or ApiError."""
        started = time.monotonic()
        while not operation.get("done"):
            name = operation.get("name")
            if not name:  # not an Operation (an emulator may answer the resource itself)
                return operation
            if time.monotonic() - started > self.operation_timeout:
                raise ApiError(0, f"operation {name} not done after {self.operation_timeout:.0f}s")
            time.sleep(self.poll_seconds)
            operation = self.get(f"v1/{name}")
        if operation.get("error"):
            error = operation["error"]
            raise ApiError(error.get("code", 0), error.get("message", json.dumps(error)), "operation", operation.get("name", ""))
        return operation.get("response", {}) or {}


def base_for(api: str) -> str:
    """The base URL of one API: its own variable if set, else the common one."""
    return (os.environ.get(f"{URL_ENV}_{api.upper()}") if api else "") or os.environ.get(URL_ENV, "")


def _message(text: str) -> str:
    try:
        return json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text.strip()[:500]
