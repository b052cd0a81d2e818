"""Receipt files: their bytes, their pre-signed-style URLs (``GET /files/{id}?expires=``, no auth,
valid 24 h on the sandbox clock) and per-file faults.

What a file is comes from the export item that declared it (``store.files``: ``fileId``, ``type``,
``size``). Its bytes are generated from its id and type (:func:`pleo_sandbox.data.file_chunks`)
and streamed, so a large file costs the sandbox no memory. Every request for a file is in the
request log like any API request, with the headers it arrived with (what a test reads to see that
no ``Authorization`` reached the file host).

Per-file faults (``add_file_fault(file_id, kind, *, count=None, ...)``, control ``POST
/_sandbox/files/{fileId}/faults``); ``count``: how many requests misbehave (None: all):

``not_found``        404
``server_error``     ``status`` (default 503) for ``count`` (default 1) requests, then the file
``stall``            no answer for ``seconds`` (default: the ``stall_seconds`` switch), then the
                     connection is closed
``truncated``        the full ``Content-Length``, half the body, then the connection is closed
``size_mismatch``    a complete answer ``extra`` (default 100) bytes longer than declared
``oversized``        ``size`` bytes (default: twice the declared size) without a Content-Length
                     (chunked), the declared size unchanged
``wrong_content``    bytes of the declared size that are no known file type
``content``          the declared size of another type's content: ``content`` = pdf, png, jpeg
                     or txt (a PNG where a JPEG is declared…)
``redirect_http``    302 to the same file on a plain ``http://`` host
``redirect_loop``    302 to the same URL (with ``count=N``: N redirects, then the file)

``set_file(file_id, type=None, size=None)`` changes what the export items declare for the file.
"""

from __future__ import annotations

from typing import Any

from pleo_sandbox.data import JUNK_TYPE, file_chunks
from pleo_sandbox.errors import ApiError
from pleo_sandbox.faults import Fault
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.store import Store

FILE_FAULT_KINDS = (
    "not_found",
    "server_error",
    "stall",
    "truncated",
    "size_mismatch",
    "oversized",
    "wrong_content",
    "content",
    "redirect_http",
    "redirect_loop",
)
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "txt": "text/plain",
}
# Where ``redirect_http`` sends the client: plain http, not loopback (never to be followed).
PLAIN_HTTP_HOST = "http://files.sandbox-plain-http.example"


class Files:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _file(self, file_id: str) -> dict:
        f = self.store.files.get(file_id)
        if f is None:
            raise KeyError(file_id)
        return f

    def set_file(self, file_id: str, type: str | None = None, size: int | None = None) -> dict:  # noqa: A002
        """Change what export items declare for a file (its bytes follow the new values)."""
        changes = {"type": type and str(type), "size": None if size is None else int(size)}
        changes = {key: value for key, value in changes.items() if value is not None}
        with self.store.lock:
            f = self._file(file_id)
            f.update(changes)
            for job in self.store.jobs.values():
                item = job.export_items.get(f["accountingEntryId"]) or {}
                for entry in item.get("files", []):
                    if entry.get("fileId") == file_id:
                        entry.update(changes)
            return dict(f)

    def add_file_fault(
        self,
        file_id: str,
        kind: str,
        *,
        count: int | None = None,
        status: int = 503,
        seconds: float | None = None,
        content: str | None = None,
        size: int | None = None,
        extra: int = 100,
    ) -> dict:
        """Make requests for one file misbehave (kinds in the module docstring)."""
        if kind not in FILE_FAULT_KINDS:
            raise ValueError(f"unknown file fault {kind!r}; expected one of {FILE_FAULT_KINDS}")
        if kind == "content" and content not in CONTENT_TYPES:
            raise ValueError(f"content must be one of {tuple(CONTENT_TYPES)}")
        path = f"/files/{file_id}"
        with self.store.lock:
            self._file(file_id)
            if kind in ("not_found", "server_error", "stall"):
                fault = Fault(
                    "stall" if kind == "stall" else "status",
                    method="GET",
                    path=path,
                    count=1 if count is None and kind == "server_error" else count,
                    status=404 if kind == "not_found" else int(status),
                    body={"type": "FILE_NOT_FOUND", "message": "File not found."}
                    if kind == "not_found"
                    else None,
                    seconds=seconds,
                )
                self.store.faults.add(fault)
                return {"fileId": file_id, "kind": kind, "faultId": fault.id}
            spec = {"kind": kind, "count": count, "content": content, "size": size, "extra": extra}
            self.store.files[file_id]["fault"] = spec
            return {"fileId": file_id, **spec}

    def _take_fault(self, file_id: str) -> dict | None:
        with self.store.lock:
            f = self.store.files.get(file_id) or {}
            spec = f.get("fault")
            if spec is None:
                return None
            if spec["count"] is not None:
                spec["count"] -= 1
                if spec["count"] <= 0:
                    f.pop("fault")
            return dict(spec)

    def http_download(self, req: Request, file_id: str) -> Response:
        """``GET /files/{id}?expires=``: the file, unless the link expired or a fault says."""
        with self.store.lock:
            info = dict(self.store.files.get(file_id) or {})
            now = self.store.clock.now().timestamp()
        if not info:
            raise ApiError(404, "FILE_NOT_FOUND", "File not found.")
        try:
            expires = int(req.param("expires", "0") or 0)
        except ValueError:
            expires = 0
        if now >= expires:
            raise ApiError(403, "FILE_URL_EXPIRED", "The file URL has expired.")
        mime, size = info["type"], int(info["size"])
        fault = self._take_fault(file_id)
        kind = fault["kind"] if fault else None
        query = f"?expires={expires}"
        if kind == "redirect_http":
            return Response(302, headers={"Location": f"{PLAIN_HTTP_HOST}{req.path}{query}"})
        if kind == "redirect_loop":
            return Response(302, headers={"Location": f"{req.path}{query}"})
        if kind == "size_mismatch":
            size += int(fault["extra"])
        elif kind == "wrong_content":
            mime = JUNK_TYPE
        elif kind == "content":
            mime = CONTENT_TYPES[fault["content"]]
        stream = file_chunks(file_id, mime, size)
        if kind == "oversized":
            big = int(fault["size"] or 2 * size)
            stream, size = file_chunks(file_id, mime, big), None
        elif kind == "truncated":
            return Response(
                200,
                stream=file_chunks(file_id, mime, size // 2),
                length=size,
                cut=True,
                content_type=info["type"],
            )
        return Response(200, stream=stream, length=size, content_type=info["type"])


def file_fault_body(body: dict[str, Any]) -> dict[str, Any]:
    """The control request's fields as ``add_file_fault`` keywords."""
    allowed = {"kind", "count", "status", "seconds", "content", "size", "extra"}
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, "SANDBOX_BAD_REQUEST", f"Unknown field '{sorted(unknown)[0]}'.")
    if "kind" not in body:
        raise ApiError(400, "SANDBOX_BAD_REQUEST", "'kind' is required.")
    return dict(body)
