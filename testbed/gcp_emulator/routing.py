"""Requests, responses, errors and the route table shared by every emulated API.

Errors use Google's JSON error shape, `{"error": {"code", "message", "status"}}`
(Google Cloud APIs design guide, "Errors": HTTP mapping and the canonical status names of
google.rpc.Code), which is what gcloud's apitools clients parse into "NOT_FOUND: ..." lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

# HTTP code -> google.rpc.Code name (design guide, "Errors", HTTP mapping table).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status or STATUS_NAMES.get(code, "UNKNOWN")

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


@dataclass
class Request:
    method: str
    path: str  # decoded path, no query
    raw_path: str  # as sent (percent-encoding kept: GCS object names are one encoded segment)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    def parse(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> "Request":
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return cls(method, unquote(parts.path), parts.path, query, {k.lower(): v for k, v in headers.items()}, body)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, data: Any, status: int = 200) -> "Response":
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json; charset=UTF-8"})


Handler = Callable[..., Any]  # (request, **path groups) -> dict (JSON 200) | Response


class Router:
    """Routes are (method, regex over the *raw* path). Named groups are percent-decoded."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + r"\Z"), handler))

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self.routes:
            match = pattern.match(request.raw_path)
            if not match:
                continue
            allowed = True
            if method != request.method:
                continue
            result = handler(request, **{k: unquote(v) for k, v in match.groupdict().items()})
            return result if isinstance(result, Response) else Response.of_json(result)
        if allowed:
            raise ApiError(405, f"Method {request.method} not allowed on {request.path} (emulator)", "UNIMPLEMENTED")
        raise ApiError(404, f"The emulator does not serve {request.method} {request.path}", "NOT_FOUND")
