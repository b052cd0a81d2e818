"""The request and response objects shared by the HTTP handler and the routing tables."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pleo_sandbox.errors import ApiError

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_MISSING = object()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    request_id: str | None = None
    _parsed: Any = field(default=_MISSING, repr=False)

    def loose_body(self) -> Any:
        """Parsed JSON if the body is JSON, else its text (or None when empty); never raises."""
        if not self.raw_body:
            return None
        try:
            return json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError):
            return self.raw_body.decode("utf-8", "replace")

    def form_body(self) -> dict[str, str] | None:
        """A form-encoded body as a dict (last value wins), or None for any other body."""
        media = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != FORM_CONTENT_TYPE or not self.raw_body:
            return None
        try:
            return dict(parse_qsl(self.raw_body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None

    def match_body(self) -> Any:
        """What faults' ``body_match`` is compared with: the form as a dict, else loose JSON."""
        form = self.form_body()
        return form if form is not None else self.loose_body()

    def json(self) -> Any:
        """The JSON body of an API request: 400 when missing/malformed, 415 when not JSON."""
        if self._parsed is not _MISSING:
            return self._parsed
        if not self.raw_body:
            raise ApiError(400, "BAD_REQUEST", "Required request body is missing.")
        content_type = self.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type '{content_type}' is not supported; use {JSON_CONTENT_TYPE}.",
            )
        try:
            self._parsed = json.loads(self.raw_body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON request body.")
        return self._parsed

    def control_json(self) -> dict:
        """Body of a control request: lenient about content type; {} when empty."""
        if not self.raw_body:
            return {}
        try:
            value = json.loads(self.raw_body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "SANDBOX_BAD_REQUEST", "Malformed JSON request body.")
        if not isinstance(value, dict):
            raise ApiError(400, "SANDBOX_BAD_REQUEST", "Control request bodies are JSON objects.")
        return value

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, bytes, or None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_CONTENT_TYPE
    # A streamed body (receipt files) instead of ``body``: sent with ``Content-Length: length``,
    # or chunked when ``length`` is None; ``cut``: the connection is closed after the stream
    # (a body shorter than announced).
    stream: Iterable[bytes] | None = None
    length: int | None = None
    cut: bool = False

    @classmethod
    def error(cls, error: ApiError) -> Response:
        return cls(error.status, error.body(), dict(error.headers))
