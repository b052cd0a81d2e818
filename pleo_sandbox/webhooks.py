"""Webhook deliveries: Standard-Webhooks-signed POSTs on a background thread, with retries.

Each delivery keeps its ``webhook-id`` (``msg_…``) and body across attempts; every attempt gets a
fresh ``webhook-timestamp`` (sandbox clock) and signature. An attempt fails on a non-2xx answer or
a connection error/timeout and is retried after the next delay of the ``webhook_retry_schedule``
switch (so ``len(schedule) + 1`` attempts at most). Every attempt is appended to the deliveries
log. Deliveries use ``http.client`` (not ``requests``) so that tests mocking ``requests`` do not
intercept them.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from pleo_sandbox.clock import SandboxClock, wall_time
from pleo_sandbox.requestlog import EntryLog
from pleo_sandbox.signing import sign
from pleo_sandbox.vocabulary import DeliveryOutcome

logger = logging.getLogger("pleo_sandbox")

USER_AGENT = "PleoSandbox-Webhooks/1.0"


@dataclass
class Delivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    subscription_id: str
    url: str
    secret: str
    custom_headers: dict[str, str]
    basic_auth: tuple[str, str] | None
    body: bytes
    job_id: str | None
    generation: int = 0
    attempts: int = 0


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float):
    """POST and return ``(status, response text, error)``; never raises."""
    parts = urlsplit(url)
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = None
    try:
        conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")
        return response.status, text, None
    except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt
        return None, None, f"{type(exc).__name__}: {exc}"
    finally:
        if conn is not None:
            conn.close()


class WebhookDispatcher:
    def __init__(
        self,
        clock: SandboxClock,
        *,
        schedule: Callable[[], list[float]],
        timeout: Callable[[], float],
        is_active: Callable[[str], bool],
    ) -> None:
        self._clock = clock
        self._schedule = schedule
        self._timeout = timeout
        self._is_active = is_active
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._log = EntryLog("webhook deliveries")
        self._generation = 0
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is None and not self._stopping:
            self._executor = ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="pleo-sandbox-webhook"
            )
            self._thread = threading.Thread(
                target=self._run, name="pleo-sandbox-webhooks", daemon=True
            )
            self._thread.start()

    def restart(self) -> None:
        """Allow deliveries again after :meth:`stop` (the server was started again)."""
        with self._cond:
            if self._stopping:
                self._stopping = False
                self._thread = None
                self._executor = None

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._generation += 1
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def reset(self) -> None:
        """Forget queued deliveries and the log (attempts in flight are not logged)."""
        with self._cond:
            self._generation += 1
            self._heap.clear()
            self._log.clear()
            self._cond.notify_all()

    # -- queue -----------------------------------------------------------------------------
    def enqueue(self, delivery: Delivery, delay: float = 0.0) -> None:
        with self._cond:
            self._ensure_started()
            delivery.generation = self._generation
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._heap)
                if delivery.generation != self._generation:
                    continue
                self._in_flight += 1
            try:
                assert self._executor is not None
                self._executor.submit(self._attempt, delivery)
            except RuntimeError:  # executor shut down
                with self._cond:
                    self._in_flight -= 1
                return

    def _attempt(self, delivery: Delivery) -> None:
        try:
            self._attempt_inner(delivery)
        except Exception:
            logger.exception("webhook delivery %s crashed", delivery.id)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _attempt_inner(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        entry = {
            "deliveryId": delivery.id,
            "webhookId": delivery.webhook_id,
            "eventId": delivery.event_id,
            "eventType": delivery.event_type,
            "subscriptionId": delivery.subscription_id,
            "jobId": delivery.job_id,
            "url": delivery.url,
            "attempt": delivery.attempts,
            "body": delivery.body.decode("utf-8"),
        }
        if not self._is_active(delivery.subscription_id):
            entry.update(
                outcome=DeliveryOutcome.CANCELLED, status=None, error="subscription not active"
            )
            entry.update(startedAt=wall_time(), endedAt=wall_time(), nextAttemptInSeconds=None)
            self._record(delivery, entry)
            return
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **delivery.custom_headers,
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(
                delivery.secret, delivery.webhook_id, timestamp, delivery.body
            ),
        }
        if delivery.basic_auth is not None:
            raw = f"{delivery.basic_auth[0]}:{delivery.basic_auth[1]}".encode()
            headers["authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        entry["startedAt"] = wall_time()
        started = time.monotonic()
        status, text, error = _post(delivery.url, delivery.body, headers, self._timeout())
        entry.update(
            endedAt=wall_time(),
            durationSeconds=round(time.monotonic() - started, 4),
            timestamp=timestamp,
            signature=headers["webhook-signature"],
            requestHeaders={
                k: ("<redacted>" if k == "authorization" else v) for k, v in headers.items()
            },
            status=status,
            responseBody=text,
            error=error,
        )
        schedule = list(self._schedule())
        delivered = status is not None and 200 <= status < 300
        delay = None
        if delivered:
            outcome = DeliveryOutcome.DELIVERED
        elif delivery.attempts <= len(schedule):
            outcome, delay = DeliveryOutcome.RETRYING, float(schedule[delivery.attempts - 1])
        else:
            outcome = DeliveryOutcome.FAILED
        entry.update(outcome=outcome, nextAttemptInSeconds=delay)
        if self._record(delivery, entry) and delay is not None:
            self.enqueue_retry(delivery, delay)
        if delivered:
            logger.info(
                "webhook %s delivered to subscription %s",
                delivery.webhook_id,
                delivery.subscription_id,
            )
        else:
            logger.info(
                "webhook %s attempt %d failed (%s)",
                delivery.webhook_id,
                delivery.attempts,
                status if status is not None else error,
            )

    def enqueue_retry(self, delivery: Delivery, delay: float) -> None:
        with self._cond:
            if delivery.generation != self._generation or self._stopping:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify_all()

    def _record(self, delivery: Delivery, entry: dict) -> bool:
        with self._cond:
            if delivery.generation != self._generation:
                return False
            self._log.append(entry)
            return True

    # -- reading -----------------------------------------------------------------------------
    def log(self) -> list[dict]:
        return self._log.snapshot()

    def clear_log(self) -> None:
        self._log.clear()

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 5.0) -> list[dict]:
        """Block until ``predicate(log)`` is true; return the log (raise TimeoutError)."""
        return self._log.wait_for(predicate, timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or in flight; True if it got there in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True
