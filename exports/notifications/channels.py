"""The two channels: email (Django's email backend) and a Slack-compatible incoming webhook.

The webhook URL is a secret (whoever knows its path may post to the channel): it is read from the
setting when a message goes, never stored, logged or put in an error; errors name the host only.
Every HTTP call has a timeout; a webhook that answers 429 or 5xx is tried again once in the same
attempt when its ``Retry-After`` is short, otherwise the attempt fails with that ``Retry-After``
so that the next attempt is not sooner (the service schedules it).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.views.decorators.debug import sensitive_variables

from exports import clock
from exports.pleo.transport import retry_after_seconds

logger = logging.getLogger(__name__)

WEBHOOK_CONNECT_TIMEOUT = 5.0
WEBHOOK_READ_TIMEOUT = 10.0
WEBHOOK_TRIES = 2  # in one attempt; later attempts are scheduled by the service
# A Retry-After up to this long is waited for in the worker; a longer one ends the attempt.
WEBHOOK_WAIT_CAP = 5.0
WEBHOOK_BACKOFF = 1.0
RETRY_AFTER_MAX = 3600.0
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_sleep = time.sleep  # tests replace it


class ChannelError(Exception):
    """A channel did not take the message. ``str()`` is safe to store and log (no URL)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def webhook_configured() -> bool:
    return bool(str(settings.NOTIFY_WEBHOOK_URL or ""))


def webhook_host() -> str:
    """The configured webhook's host, the one part of its URL that may be shown."""
    return urlsplit(str(settings.NOTIFY_WEBHOOK_URL or "")).hostname or ""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a chat webhook asks us to wait (read as Pleo's ``Retry-After`` is), at most
    ``RETRY_AFTER_MAX``; None when absent or unreadable."""
    seconds = retry_after_seconds(value, clock.now())
    return None if seconds is None else min(seconds, RETRY_AFTER_MAX)


def slack_text(subject: str, text: str) -> str:
    """Slack's text: ``&``, ``<`` and ``>`` escaped (a company name cannot ping a channel)."""
    raw = f"*{subject}*\n{text}"
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@sensitive_variables("url")
def post_webhook(*, subject: str, text: str) -> None:
    url = str(settings.NOTIFY_WEBHOOK_URL)
    host = webhook_host()
    payload = {"text": slack_text(subject, text)}
    headers = {"User-Agent": f"pleo-export-bridge/{settings.VERSION}"}
    for attempt in range(1, WEBHOOK_TRIES + 1):
        retry_after = None
        try:
            response = requests.post(
                url,
                json=payload,
                headers=headers,
                timeout=(WEBHOOK_CONNECT_TIMEOUT, WEBHOOK_READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # The exception's text names the URL's path: only its type is kept.
            error = f"webhook ({host}): {type(exc).__name__}"
        else:
            status = response.status_code
            response.close()
            if 200 <= status < 300:
                return
            error = f"webhook ({host}): HTTP {status}"
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status not in RETRYABLE_STATUSES:
                raise ChannelError(error)
        wait = WEBHOOK_BACKOFF if retry_after is None else retry_after
        if attempt == WEBHOOK_TRIES or wait > WEBHOOK_WAIT_CAP:
            raise ChannelError(error, retry_after=retry_after)
        logger.info(
            "Notification webhook (%s) failed (%s); trying again in %.0f s", host, error, wait
        )
        _sleep(wait)


def _email_error(address: str, exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    return f"email to {address}: {type(exc).__name__}" + (f" {code}" if code else "")


def send_emails(*, subject: str, text: str, addresses: list[str]) -> tuple[list[str], list[str]]:
    """One message per address (a bookkeeper never sees the others' addresses), over one
    connection. Returns (addresses done, errors)."""
    if not addresses:
        return [], []
    done: list[str] = []
    errors: list[str] = []
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except Exception as exc:  # the backends' errors are not one family (smtplib, OSError, ...)
        return [], [f"email: {type(exc).__name__}"]
    try:
        for address in addresses:
            message = EmailMessage(
                subject=subject,
                body=text,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[address],
                connection=connection,
            )
            try:
                message.send()
            except Exception as exc:
                errors.append(_email_error(address, exc))
            else:
                done.append(address)
    finally:
        try:
            connection.close()
        except Exception:  # closing a broken connection may fail too: nothing more to do
            logger.debug("Closing the email connection failed", exc_info=False)
    return done, errors
