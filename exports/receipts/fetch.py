"""Download receipt files from Pleo's pre-signed URLs: streamed, verified, archived.

One file (:func:`receipt_fetch`):

* **Never leak.** The URL carries its own authorisation (the signed query string), so the request
  goes through a fresh ``requests.Session`` without auth, without environment settings (no
  ``.netrc`` credentials) and without any header of ours but a neutral User-Agent. Only ``https``
  (loopback, ``http`` too, with ``DEBUG`` or ``PLEO_SANDBOX``, as for Pleo itself), on a host of
  ``RECEIPTS_ALLOWED_HOSTS`` when that is set. Redirects are followed by hand, at most
  :data:`MAX_REDIRECTS`, each target checked by the same rule. The signed URL is never logged,
  stored or put in a message: a file is named by its position and host/path (:attr:`FileRef.where`).
* **Stream.** Chunks go to a temporary file, hashed (SHA-256) and counted on the way; reading
  stops past ``RECEIPTS_MAX_BYTES``. Memory does not grow with the file.
* **Verify.** The size against Pleo's declared ``size``; the type by the content
  (:mod:`exports.receipts.sniff`) against ``RECEIPTS_ACCEPTED_TYPES``. Accepted content under
  another declared type is kept under the sniffed type, with a note for the audit table.
* **Retry** a 5xx, 429 (honouring ``Retry-After``), timeout or cut-off body, at most
  ``RECEIPTS_MAX_ATTEMPTS`` times with exponential backoff; never past the ``deadline`` given.

Many files (:func:`receipts_fetch_many`): ``RECEIPTS_DOWNLOAD_CONCURRENCY`` threads, one session
each. Neither touches the database; the archive's rows are written by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from exports import clock
from exports.pleo import ItemFailureReasonType
from exports.pleo.hosts import is_loopback
from exports.receipts.sniff import MIME_TYPES, Kind, Sniffer, accepted_kinds, kind_of
from exports.receipts.storage import receipt_store

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
RETRY_AFTER_CAP = 30.0
USER_AGENT = "pleo-export-bridge-receipts/1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def shown_url(url: str) -> str:
    """Host (and port) and path of a URL: what may be logged, stored and shown. Never the query
    (the signature) nor a user name or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an unreadable URL"
    return f"{host}{port}{parts.path}"


@dataclass(frozen=True)
class FileRef:
    """One entry of an export item's ``files[]``: its position (0-based) and what Pleo declared."""

    position: int
    url: str
    declared_type: str = ""
    declared_size: int | None = None

    @property
    def where(self) -> str:
        return f"file {self.position + 1} ({shown_url(self.url) if self.url else 'no URL'})"

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "") if self.url else ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path if self.url else ""


def file_refs(item: Mapping[str, Any]) -> list[FileRef]:
    """The ``files[]`` of an ``ExportItemV3`` (read generously: a malformed entry becomes a ref
    without URL, which fails as a download failure naming its position)."""
    files = item.get("files") if isinstance(item, Mapping) else None
    refs = []
    for position, entry in enumerate(files if isinstance(files, list) else []):
        entry = entry if isinstance(entry, Mapping) else {}
        url = entry.get("url")
        size = entry.get("size")
        refs.append(
            FileRef(
                position=position,
                url=url if isinstance(url, str) else "",
                declared_type=str(entry.get("type") or "")[:100],
                declared_size=size if isinstance(size, int) and size >= 0 else None,
            )
        )
    return refs


@dataclass(frozen=True)
class FetchConfig:
    max_bytes: int
    accepted: frozenset[Kind]
    allowed_hosts: frozenset[str]
    allow_loopback: bool
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    concurrency: int

    @classmethod
    def from_settings(cls) -> FetchConfig:
        return cls(
            max_bytes=int(settings.RECEIPTS_MAX_BYTES),
            accepted=accepted_kinds(settings.RECEIPTS_ACCEPTED_TYPES),
            allowed_hosts=frozenset(settings.RECEIPTS_ALLOWED_HOSTS),
            allow_loopback=bool(settings.PLEO_ALLOW_LOOPBACK),
            connect_timeout=float(settings.RECEIPTS_CONNECT_TIMEOUT),
            read_timeout=float(settings.RECEIPTS_READ_TIMEOUT),
            max_attempts=max(1, int(settings.RECEIPTS_MAX_ATTEMPTS)),
            backoff_base=float(settings.RECEIPTS_BACKOFF_BASE),
            backoff_max=float(settings.RECEIPTS_BACKOFF_MAX),
            concurrency=max(1, int(settings.RECEIPTS_DOWNLOAD_CONCURRENCY)),
        )


@dataclass(frozen=True)
class Fetched:
    """A file downloaded, verified and archived."""

    ref: FileRef
    kind: Kind
    size: int
    sha256: str
    storage_name: str
    fetched_at: datetime
    # Set when the content is another accepted type than the one declared.
    type_note: str = ""

    @property
    def content_type(self) -> str:
        return MIME_TYPES[self.kind]


class ReceiptFailure(Exception):
    """A file that cannot be had: its item failure type and a message naming the file."""

    def __init__(self, failure_type: ItemFailureReasonType, message: str) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.message = message


class OutOfTime(Exception):
    """The job's ``deadline`` came before the file could be fetched (not tried, or not again)."""

    def __init__(self, deadline: datetime) -> None:
        super().__init__(f"not fetched before {deadline:%Y-%m-%d %H:%M:%S} UTC")
        self.deadline = deadline


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def url_refusal(url: str, config: FetchConfig) -> str | None:
    """Why ``url`` may not be fetched, or None. Never repeats the query."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "the URL is not valid"
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        return "the URL names a user or password"
    if not host:
        return "the URL names no host"
    if scheme == "http" and is_loopback(host) and config.allow_loopback:
        return None
    if scheme != "https":
        return f"{shown_url(url)} is not https ({scheme or 'no scheme'}): only https is fetched"
    if is_loopback(host) and not config.allow_loopback:
        return f"{host} is a loopback address (allowed only with DEBUG or PLEO_SANDBOX)"
    if config.allowed_hosts and host not in config.allowed_hosts and not is_loopback(host):
        return f"{host} is not in RECEIPTS_ALLOWED_HOSTS"
    return None


def new_session() -> requests.Session:
    """A session that sends nothing of ours: no auth, no environment (``.netrc``), only a
    neutral User-Agent beside requests' own protocol headers."""
    session = requests.Session()
    session.trust_env = False
    session.auth = None
    session.headers.clear()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "*/*"})
    return session


def _limit_failure(ref: FileRef, config: FetchConfig, seen: str) -> ReceiptFailure:
    return ReceiptFailure(
        ItemFailureReasonType.RECEIPT_FILE_SIZE_LIMIT_EXCEEDED,
        f"Receipt {ref.where} is {seen}, over the limit of {config.max_bytes} bytes.",
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return None


def receipt_fetch(
    *,
    ref: FileRef,
    company_pk: object,
    config: FetchConfig,
    session: requests.Session,
    deadline: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Download, verify and archive one file. Raises :class:`ReceiptFailure` (with the item
    failure type) or :class:`OutOfTime`."""
    if not ref.url:
        raise ReceiptFailure(
            ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
            f"Receipt {ref.where}: Pleo gave no URL for it.",
        )
    if ref.declared_size is not None and ref.declared_size > config.max_bytes:
        raise _limit_failure(ref, config, f"declared as {ref.declared_size} bytes")
    problem = url_refusal(ref.url, config)
    if problem:
        raise ReceiptFailure(
            ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
            f"Receipt {ref.where} was not fetched: {problem}.",
        )
    last = ""
    for attempt in range(1, config.max_attempts + 1):
        if deadline is not None and clock.now() >= deadline:
            raise OutOfTime(deadline)
        try:
            return _download(ref, company_pk=company_pk, config=config, session=session)
        except _Transient as exc:
            last = str(exc)
            if attempt == config.max_attempts:
                break
            pause = min(config.backoff_base * 2 ** (attempt - 1), config.backoff_max)
            if exc.retry_after is not None:
                pause = max(pause, exc.retry_after)
            logger.warning(
                "Receipt %s: %s (attempt %d of %d)", ref.where, last, attempt, config.max_attempts
            )
            if deadline is not None and (deadline - clock.now()).total_seconds() <= pause:
                raise OutOfTime(deadline) from None
            sleep(pause)
    raise ReceiptFailure(
        ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
        f"Receipt {ref.where} could not be downloaded after {config.max_attempts} attempts: "
        f"{last}.",
    )


def _open(ref: FileRef, config: FetchConfig, session: requests.Session) -> requests.Response:
    """GET the file, following at most MAX_REDIRECTS redirects by hand, each target checked."""
    url = ref.url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            response = session.get(
                url,
                stream=True,
                allow_redirects=False,
                timeout=(config.connect_timeout, config.read_timeout),
            )
        except requests.Timeout:
            raise _Transient(f"no answer from {shown_url(url)} in time") from None
        except requests.RequestException as exc:
            raise _Transient(f"{shown_url(url)} unreachable ({type(exc).__name__})") from None
        if response.status_code not in _REDIRECTS:
            return response
        location = response.headers.get("Location", "")
        response.close()
        if hop == MAX_REDIRECTS:
            break
        target = urljoin(url, location)
        problem = url_refusal(target, config) if location else "the redirect names no target"
        if problem:
            raise ReceiptFailure(
                ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
                f"Receipt {ref.where} redirected to a place not followed: {problem}.",
            )
        url = target
    raise ReceiptFailure(
        ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
        f"Receipt {ref.where} redirected more than {MAX_REDIRECTS} times; not followed further.",
    )


def _download(
    ref: FileRef, *, company_pk: object, config: FetchConfig, session: requests.Session
) -> Fetched:
    response = _open(ref, config, session)
    with response:
        status = response.status_code
        if status >= 500 or status == 429:
            raise _Transient(f"the file host answered {status}", _retry_after(response))
        if status != 200:
            raise ReceiptFailure(
                ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
                f"Receipt {ref.where}: the file host answered {status} (the link may have "
                f"expired: export the item again from Pleo).",
            )
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > config.max_bytes:
            raise _limit_failure(ref, config, f"{length} bytes (Content-Length)")
        handle, name = tempfile.mkstemp(prefix="receipt-")
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                digest, size, sniffer = _stream(ref, response, out, config)
            if length.isdigit() and size != int(length):
                raise _Transient(f"the download was cut off at {size} of {length} bytes")
            return _verified(ref, company_pk, path, digest, size, sniffer, config)
        finally:
            path.unlink(missing_ok=True)


def _stream(ref: FileRef, response: requests.Response, out, config: FetchConfig):
    digest, size, sniffer = hashlib.sha256(), 0, Sniffer()
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            if size > config.max_bytes:
                raise _limit_failure(ref, config, "larger (reading stopped at the limit)")
            digest.update(chunk)
            sniffer.feed(chunk)
            out.write(chunk)
    except requests.Timeout:
        raise _Transient(f"the download stalled after {size} bytes") from None
    except requests.RequestException as exc:
        raise _Transient(
            f"the download was cut off after {size} bytes ({type(exc).__name__})"
        ) from None
    return digest.hexdigest(), size, sniffer


def _verified(
    ref: FileRef,
    company_pk: object,
    path: Path,
    sha256: str,
    size: int,
    sniffer: Sniffer,
    config: FetchConfig,
) -> Fetched:
    if ref.declared_size is not None and size != ref.declared_size:
        raise ReceiptFailure(
            ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
            f"Receipt {ref.where}: Pleo declared {ref.declared_size} bytes, {size} arrived (the "
            f"file is incomplete or not the one described).",
        )
    declared = kind_of(ref.declared_type)
    kind = sniffer.verdict(path)
    accepted = ", ".join(sorted(config.accepted))
    if kind is None or kind not in config.accepted:
        seen = "none of the accepted types" if kind is None else f"{kind}, not accepted"
        raise ReceiptFailure(
            ItemFailureReasonType.RECEIPT_CONVERSION_FAILURE,
            f"Receipt {ref.where}: declared as '{ref.declared_type or 'no type'}', its content "
            f"is {seen} (accepted: {accepted}).",
        )
    note = ""
    if declared != kind:
        note = (
            f"Receipt {ref.where} was declared as '{ref.declared_type or 'no type'}' but its "
            f"content is {kind}: archived as {MIME_TYPES[kind]}."
        )
    name = receipt_store(company_pk=company_pk, sha256=sha256, path=path)
    return Fetched(
        ref=ref,
        kind=kind,
        size=size,
        sha256=sha256,
        storage_name=name,
        fetched_at=clock.now(),
        type_note=note,
    )


def receipts_fetch_many(
    refs: Iterable[tuple[Hashable, FileRef]],
    *,
    company_pk: object,
    config: FetchConfig | None = None,
    deadline: datetime | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> dict[Hashable, Fetched | ReceiptFailure | OutOfTime]:
    """Fetch every ``(key, ref)`` on ``config.concurrency`` threads (of ``pool`` when given, kept
    by the caller across calls); the outcome of each by key."""
    config = config or FetchConfig.from_settings()
    jobs = list(refs)
    if not jobs:
        return {}
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def one(ref: FileRef) -> Fetched | ReceiptFailure | OutOfTime:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = new_session()
            with lock:
                sessions.append(session)
        try:
            return receipt_fetch(
                ref=ref, company_pk=company_pk, config=config, session=session, deadline=deadline
            )
        except (ReceiptFailure, OutOfTime) as exc:
            if isinstance(exc, ReceiptFailure):
                logger.warning("%s", exc.message)
            return exc

    try:
        if pool is not None:
            outcomes = list(pool.map(one, [ref for _, ref in jobs]))
        else:
            with ThreadPoolExecutor(max_workers=min(config.concurrency, len(jobs))) as own:
                outcomes = list(own.map(one, [ref for _, ref in jobs]))
    finally:
        for session in sessions:
            session.close()
    return {key: outcome for (key, _), outcome in zip(jobs, outcomes, strict=True)}
