"""Error reports without the secrets a URL can carry.

Django's error report (the technical 500 page with DEBUG, the ``AdminEmailHandler`` mail, any log
handler that renders it) hides settings with secret-like names, POST parameters marked with
``sensitive_post_parameters`` and local variables marked with ``sensitive_variables``, but shows
the query string as it came: in the GET section, the request URL, ``QUERY_STRING`` in META and the
request's repr in the frames' variables. Pleo's OAuth callback
(``/oauth/pleo/callback/?code=…&state=…``) carries an authorization code there.

:class:`SecretQueryReporterFilter` (``DEFAULT_EXCEPTION_REPORTER_FILTER``) cleanses the values of
query parameters with secret-like names (:func:`is_sensitive_query_parameter`) on every request,
with DEBUG on too, wherever the filter is asked: META, and query dicts and requests among the
frames' variables. Django's reporter reads the GET section and the request URL from the request
itself, without the filter: :class:`SecretQueryExceptionReporter` (``DEFAULT_EXCEPTION_REPORTER``)
cleanses those, and as a last guard removes any remaining copy of such a value from the report
(an exception message or a variable that quotes it).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from django.http import HttpRequest, QueryDict
from django.utils.html import escape
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

# Query parameters whose values are secrets: OAuth 2 (RFC 6749, RFC 7636) and the usual others.
SENSITIVE_QUERY_NAMES = frozenset(
    {
        "code",
        "state",
        "session_state",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "assertion",
        "code_verifier",
        "password",
        "secret",
        "key",
        "api_key",
        "apikey",
        "signature",
        "sig",
    }
)
# ... and any name containing one of these (``x_refresh_token``, ``webhook_secret``, …).
SENSITIVE_QUERY_PATTERN = re.compile(
    r"token|secret|passw|verifier|signature|api_?key|credential", re.IGNORECASE
)
# META entries that hold a whole URL (or the query string itself).
URL_META_KEYS = ("REQUEST_URI", "RAW_URI", "HTTP_REFERER")
# Shorter values are not searched for in the rendered report (they would match too much).
MIN_SCRUBBED_LENGTH = 8


def is_sensitive_query_parameter(name: str) -> bool:
    return name.lower() in SENSITIVE_QUERY_NAMES or bool(SENSITIVE_QUERY_PATTERN.search(name))


class _CleansedRequest:
    """Stands in for a request among a frame's variables: its repr, with the query cleansed."""

    def __init__(self, request: HttpRequest, path: str) -> None:
        self.text = f"<{type(request).__name__}: {request.method} {path!r}>"

    def __repr__(self) -> str:
        return self.text


class SecretQueryReporterFilter(SafeExceptionReporterFilter):
    """``SafeExceptionReporterFilter`` that also cleanses secret query parameters (always)."""

    def is_sensitive_query_parameter(self, name: str) -> bool:
        return is_sensitive_query_parameter(name)

    def cleanse_query_dict(self, query: QueryDict) -> QueryDict:
        cleansed = query.copy()
        for name in list(cleansed):
            if self.is_sensitive_query_parameter(name):
                count = len(cleansed.getlist(name))
                cleansed.setlist(name, [self.cleansed_substitute] * count)
        return cleansed

    def cleanse_query_string(self, query: str) -> str:
        parts = []
        for part in query.split("&"):
            name, sep, _value = part.partition("=")
            if sep and self.is_sensitive_query_parameter(unquote_plus(name)):
                part = f"{name}={self.cleansed_substitute}"
            parts.append(part)
        return "&".join(parts)

    def cleanse_url(self, url: str) -> str:
        base, sep, rest = url.partition("?")
        if not sep:
            return url
        query, hash_sign, fragment = rest.partition("#")
        return f"{base}?{self.cleanse_query_string(query)}{hash_sign}{fragment}"

    def get_get_parameters(self, request: HttpRequest | None) -> QueryDict | dict:
        if request is None:
            return {}
        return self.cleanse_query_dict(request.GET)

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        meta = super().get_safe_request_meta(request)
        if isinstance(meta.get("QUERY_STRING"), str):
            meta["QUERY_STRING"] = self.cleanse_query_string(meta["QUERY_STRING"])
        for key in URL_META_KEYS:
            if isinstance(meta.get(key), str):
                meta[key] = self.cleanse_url(meta[key])
        return meta

    def cleanse_special_types(self, request: HttpRequest | None, value: Any) -> Any:
        return self._cleanse_query_holders(super().cleanse_special_types(request, value))

    def _cleanse_query_holders(self, value: Any, depth: int = 0) -> Any:
        """Query dicts and requests, also inside a tuple, list or dict (``func_args`` …)."""
        try:
            if isinstance(value, QueryDict):
                return self.cleanse_query_dict(value)
            if isinstance(value, HttpRequest):
                return _CleansedRequest(value, self.cleanse_url(value.get_full_path()))
            if depth < 2 and type(value) in (tuple, list):
                return type(value)(self._cleanse_query_holders(v, depth + 1) for v in value)
            if depth < 2 and type(value) is dict:
                return {k: self._cleanse_query_holders(v, depth + 1) for k, v in value.items()}
        except Exception:  # a lazy object that fails to evaluate: shown as Django shows it
            return value
        return value


class SecretQueryExceptionReporter(ExceptionReporter):
    """``ExceptionReporter`` whose GET section and request URL go through the query filter."""

    @property
    def query_filter(self) -> SecretQueryReporterFilter:
        if isinstance(self.filter, SecretQueryReporterFilter):
            return self.filter
        return SecretQueryReporterFilter()

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if self.request is not None:
            data["request_GET_items"] = self.query_filter.get_get_parameters(self.request).items()
            data["request_insecure_uri"] = self.query_filter.cleanse_url(
                data["request_insecure_uri"]
            )
        return data

    def get_traceback_html(self) -> str:
        return self._scrub(super().get_traceback_html(), html=True)

    def get_traceback_text(self) -> str:
        return self._scrub(super().get_traceback_text(), html=False)

    def _scrub(self, report: str, *, html: bool) -> str:
        """Remove any remaining copy of a secret query value (as sent, encoded or escaped)."""
        if self.request is None:
            return report
        substitute = self.query_filter.cleansed_substitute
        for name, values in self.request.GET.lists():
            if not self.query_filter.is_sensitive_query_parameter(name):
                continue
            for value in values:
                if len(value) < MIN_SCRUBBED_LENGTH:
                    continue
                forms = {value, quote(value, safe=""), quote_plus(value)}
                if html:
                    forms |= {str(escape(form)) for form in forms}
                for form in sorted(forms, key=len, reverse=True):
                    report = report.replace(form, substitute)
        return report
