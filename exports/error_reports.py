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

URLs carry credentials too: ``REDIS_URL`` (and ``Q_CLUSTER["redis"]``), ``DATABASE_URL`` (in
``request.META`` under ``runserver``, whose WSGI environ is the process environment), a cache's
``LOCATION``, any ``scheme://user:password@host`` a setting or variable holds. Their names are
not secret-like, so Django shows them. The filter replaces the user information of every URL in
a string it cleanses (settings at any depth, META, cookies, the frames' string variables) by the
cleansed substitute, with DEBUG on or off; the reporter's last guard also removes each such
password found in the settings or the process environment from the rendered report (an
exception message that quotes the URL).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, unquote_plus

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from exports.redaction import MIN_SCRUBBED_LENGTH, without_secrets

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
# The user information of a URL: ``scheme://<userinfo>@``. It runs to the last ``@`` before the
# path, so a password with a raw ``@`` is covered whole; quotes and spaces end it (a repr).
URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"<>\\]*)@"
)


def cleanse_url_credentials(text: str, substitute: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``substitute``."""
    if "@" not in text:
        return text
    return URL_USERINFO.sub(lambda m: f"{m['scheme']}{substitute}@", text)


def url_passwords(text: str) -> Iterator[str]:
    """The password of every URL in ``text`` that has one, alone and with its user name (as
    written and percent-decoded). A user name alone is not searched for: ``postgres://postgres@``
    would turn every "postgres" of a report into stars (the filter still hides it in values)."""
    for match in URL_USERINFO.finditer(text):
        userinfo = match["userinfo"]
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            yield from (userinfo, password, unquote(userinfo), unquote(password))


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """The strings in a setting's value (dicts, lists, tuples; a few levels deep)."""
    if isinstance(value, str):
        yield value
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif depth < 4 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item, depth + 1)


def configured_url_passwords() -> set[str]:
    """Passwords of the URLs in the settings and the process environment (not too short)."""
    texts: Iterable[str] = [
        *(
            text
            for name in dir(settings)
            if name.isupper()
            for text in _strings(getattr(settings, name, None))
        ),
        *os.environ.values(),
    ]
    found = {credential for text in texts if "@" in text for credential in url_passwords(text)}
    # DATABASE_URL's password as parsed into DATABASES (the filter hides it by its name).
    for database in settings.DATABASES.values():
        if isinstance(database, dict) and isinstance(database.get("PASSWORD"), str):
            found.add(database["PASSWORD"])
    return {credential for credential in found if len(credential) >= MIN_SCRUBBED_LENGTH}


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

    def cleanse_setting(self, key, value):
        """Django's rule (secret-like names, recursively), and no URL shows its credentials.
        Settings, META and cookies all come through here."""
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return cleanse_url_credentials(cleansed, self.cleansed_substitute)
        return cleansed

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
        """Query dicts, requests and URLs in strings, also inside a tuple, list or dict
        (``func_args`` …)."""
        try:
            if isinstance(value, str):
                return cleanse_url_credentials(value, self.cleansed_substitute)
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
        """Remove any remaining copy of a secret query value, or of a credential of a URL in the
        settings or the environment (as sent, encoded or escaped)."""
        substitute = self.query_filter.cleansed_substitute
        values = configured_url_passwords()
        if self.request is not None:
            for name, sent in self.request.GET.lists():
                if self.query_filter.is_sensitive_query_parameter(name):
                    values.update(value for value in sent if len(value) >= MIN_SCRUBBED_LENGTH)
        return without_secrets(report, values, substitute=substitute, html=html)
