"""System checks of the notification settings (run by ``manage.py check`` and at start-up)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Warning, register

from exports.notifications.recipients import invalid_addresses

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_NOT_SENDING = ("console", "dummy", "locmem", "filebased")


@register()
def notification_settings(app_configs, **kwargs):
    problems = []
    bad = invalid_addresses(settings.NOTIFY_EMAILS)
    if bad:
        problems.append(
            Warning(
                f"NOTIFY_EMAILS holds {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} that "
                f"{'is' if len(bad) == 1 else 'are'} not an email address: {', '.join(bad)}.",
                hint="Separate addresses with commas.",
                id="exports.W201",
            )
        )
    url = str(settings.NOTIFY_WEBHOOK_URL or "")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(
                Warning(
                    "NOTIFY_WEBHOOK_URL is not an http(s) URL: no webhook message can be sent.",
                    id="exports.W202",
                )
            )
        elif parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
            problems.append(
                Warning(
                    f"NOTIFY_WEBHOOK_URL uses plain http to {parts.hostname}: its secret path "
                    f"travels unencrypted.",
                    hint="Use the https URL the chat service gave you.",
                    id="exports.W203",
                )
            )
    backend = settings.EMAIL_BACKEND
    if settings.NOTIFY_EMAILS and not settings.DEBUG:
        if any(f".{name}." in backend for name in _NOT_SENDING):
            problems.append(
                Warning(
                    f"NOTIFY_EMAILS is set but the email backend ({backend}) does not send mail.",
                    hint="Set EMAIL_URL to your SMTP server (or EMAIL_BACKEND to a provider's).",
                    id="exports.W204",
                )
            )
    return problems
