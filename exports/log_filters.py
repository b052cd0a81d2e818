"""Logging filters named in ``settings.LOGGING``.

Imported while logging is configured, before the apps are ready: plain :mod:`logging` only.
"""

from __future__ import annotations

import logging

# Django's ``django.security.<exception>`` loggers whose records a client's request causes: a
# Host header not in ALLOWED_HOSTS, a URL so long that the redirect to the login page carrying
# it is refused (DisallowedRedirect, > 16 KiB), a form too large or with too many fields or
# files, a broken multipart body. Django answers 400 and logs them at ERROR.
CLIENT_FAULT_LOGGERS = tuple(
    f"django.security.{name}"
    for name in (
        "DisallowedHost",
        "DisallowedRedirect",
        "RequestDataTooBig",
        "TooManyFieldsSent",
        "TooManyFilesSent",
        "SuspiciousMultipartForm",
    )
)


class ClientFaultAsWarning(logging.Filter):
    """Lowers a record to WARNING: what a request can make happen is no fault of ours, and
    ERROR is kept for those (no request content may produce an ERROR line). The record is
    kept, with its message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True
