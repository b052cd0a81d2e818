"""Settings for pleo-export-bridge.

Every value comes from the environment (django-environ), with safe local defaults. A git-ignored
``.env`` in the project root is read first; the process environment always wins over it.
``.env.example`` documents every variable.
"""

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from exports.log_filters import CLIENT_FAULT_LOGGERS
from pleo_integration import __version__

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# read_env never overwrites a variable that is already set: the process environment wins.
# DOTENV_FILE points at another file (tests use it to read none).
environ.Env.read_env(os.environ.get("DOTENV_FILE") or BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
PLEO_SANDBOX = env.bool("PLEO_SANDBOX", default=False)

VERSION = __version__


def _required_secret(name: str) -> str:
    value = env.str(name, default="")
    if not value and not DEBUG:
        raise ImproperlyConfigured(
            f"{name} is not set. Set it in the environment or in .env "
            f"(the set-up command generates one), or set DEBUG=1 for local development."
        )
    return value


def _encryption_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys, each checked here: a malformed value stops every process
    (web server, gunicorn worker, qcluster, commands) at start instead of failing on the first
    secret it reads. The message names the variable and the key's position, never the key."""
    raw = _required_secret(name)
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if raw.strip() and not keys:
        raise ImproperlyConfigured(f"{name} is set but holds no key (only commas and spaces).")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{name}: key number {position} of {len(keys)} is not a valid Fernet key "
                f"(32 url-safe base64-encoded bytes). Generate one with `python -c 'from "
                f"cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
            ) from None
    return keys


SECRET_KEY = _required_secret("SECRET_KEY") or "insecure-debug-only-key-not-for-production"
# Comma-separated Fernet keys: the first encrypts, all decrypt. Empty in DEBUG: encrypting or
# decrypting then raises an error naming the variable (exports.crypto).
CREDENTIALS_ENCRYPTION_KEYS = _encryption_keys("CREDENTIALS_ENCRYPTION_KEYS")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "exports",
]
# The local Pleo sandbox is a development tool: never installed in production settings.
if DEBUG or PLEO_SANDBOX:
    INSTALLED_APPS.append("pleo_sandbox")
# The local Xero sandbox (xero_sandbox/, `manage.py xero_sandbox`): a development tool, too.
XERO_SANDBOX = env.bool("XERO_SANDBOX", default=False)
if DEBUG or XERO_SANDBOX:
    INSTALLED_APPS.append("xero_sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "exports.request_guards.RejectNulInQueryString",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "exports.request_guards.RejectMalformedAdminSelection",
    "django.contrib.messages.middleware.MessageMiddleware",
    "exports.admin.timestamps.DisplayTimeZoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pleo_integration.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "pleo_integration.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share the file: WAL lets readers run beside a writer,
    # IMMEDIATE takes the write lock at BEGIN (no deadlocking lock upgrades), and the busy
    # timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": env.str("SQLITE_TEST_NAME", default="") or None}
# Connections are kept for a minute (and checked before reuse): django-q2's ORM broker closes
# "old" connections on every enqueue, and with CONN_MAX_AGE=0 every connection is old, so each
# webhook reopened its database connection (SQLite: the file and its PRAGMAs) to queue a check.
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's permissions, less what a company-scoped staff user may not use.
AUTHENTICATION_BACKENDS = ["exports.auth_backends.CompanyScopedModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # storage and logs stay UTC; pages show DISPLAY_TIME_ZONE
USE_I18N = True
USE_TZ = True
# The time zone the admin shows timestamps in (an IANA name: Europe/Copenhagen), always with
# seconds, the zone's abbreviation and a relative time beside it (exports.admin.timestamps).
DISPLAY_TIME_ZONE = env.str("DISPLAY_TIME_ZONE", default="UTC") or "UTC"
try:
    ZoneInfo(DISPLAY_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as _exc:
    raise ImproperlyConfigured(
        f"DISPLAY_TIME_ZONE={DISPLAY_TIME_ZONE!r} is not a time zone name (e.g. Europe/Copenhagen)"
    ) from _exc

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# --- HTTPS (production: behind a proxy that terminates TLS) -----------------------------------
# The defaults follow PUBLIC_BASE_URL: served at an https:// URL with DEBUG off, the service
# redirects plain http to https, sends HSTS and marks its cookies Secure (what `check --deploy`
# asks for); at an http:// URL (bin/serve, the local demo, DEBUG=1) none of them. Each can be set.
SERVED_OVER_HTTPS = PUBLIC_BASE_URL.startswith("https://") and not DEBUG


def _proxy_ssl_header(name: str, default: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto`` (value https) or ``Header-Name:value`` -> Django's META form;
    empty: no header is trusted."""
    raw = env.str(name, default=default).strip()
    if not raw:
        return None
    header, _, value = raw.partition(":")
    return ("HTTP_" + header.strip().upper().replace("-", "_"), value.strip() or "https")


# The header by which the proxy says the request came over https. Trusted as written: the proxy
# must set it on every request, overwriting what the client sent, and the service must be
# reachable only through the proxy. Empty: trust no header (TLS ends at the service itself).
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(
    "SECURE_PROXY_SSL_HEADER", default="" if DEBUG else "X-Forwarded-Proto"
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SERVED_OVER_HTTPS)
# Paths (regular expressions, without the leading slash) answered over plain http as well: a load
# balancer's health check that talks to the service directly.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$"])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SERVED_OVER_HTTPS else 0)
# includeSubDomains covers the subdomains of the service's own host name (serve it on a host name
# of its own). Preloading is the registrable domain owner's decision, off by default; its
# check-deploy reminder (security.W021) is silenced while it is off.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SERVED_OVER_HTTPS
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SERVED_OVER_HTTPS)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Pleo -----------------------------------------------------------------------------------
PLEO_API_BASE_URL = env.str("PLEO_API_BASE_URL", default="https://external.pleo.io").rstrip("/")
PLEO_OAUTH_BASE_URL = env.str("PLEO_OAUTH_BASE_URL", default="https://auth.pleo.io").rstrip("/")
# Pleo credentials (API keys, OAuth client secrets and tokens) are only ever sent to these hosts:
# exact names, comma-separated, over https on port 443 (exports.pleo.hosts). The API and OAuth
# base URLs above and every credential's API base URL must name one of them. Loopback
# (localhost, 127.0.0.0/8, ::1; http and any port) is added only with DEBUG or PLEO_SANDBOX.
PLEO_ALLOWED_HOSTS = [
    host.strip().lower()
    for host in env.list(
        "PLEO_ALLOWED_HOSTS",
        default=[
            "external.pleo.io",
            "external.staging.pleo.io",
            "auth.pleo.io",
            "auth.staging.pleo.io",
        ],
    )
    if host.strip()
]
PLEO_ALLOW_LOOPBACK = DEBUG or PLEO_SANDBOX
# OAuth 2.0: the scopes "Connect to Pleo" asks for (space-separated), and how long before the
# access token's expiry it is refreshed (seconds).
PLEO_OAUTH_SCOPES = env.str(
    "PLEO_OAUTH_SCOPES", default="export-jobs:read export-jobs:write export-items:read"
)
PLEO_OAUTH_REFRESH_MARGIN_SECONDS = env.float("PLEO_OAUTH_REFRESH_MARGIN_SECONDS", default=60.0)
PLEO_POLL_INTERVAL_MINUTES = env.int("PLEO_POLL_INTERVAL_MINUTES", default=5)

# HTTP client: timeouts (seconds) and retry rules. Each is a setting; these are the defaults.
PLEO_CONNECT_TIMEOUT = env.float("PLEO_CONNECT_TIMEOUT", default=5.0)
PLEO_READ_TIMEOUT = env.float("PLEO_READ_TIMEOUT", default=30.0)
PLEO_MAX_ATTEMPTS = env.int("PLEO_MAX_ATTEMPTS", default=4)
PLEO_BACKOFF_BASE = env.float("PLEO_BACKOFF_BASE", default=0.5)
PLEO_BACKOFF_MAX = env.float("PLEO_BACKOFF_MAX", default=8.0)
PLEO_RETRY_AFTER_CAP = env.float("PLEO_RETRY_AFTER_CAP", default=30.0)
PLEO_ITEMS_BATCH_SIZE = env.int("PLEO_ITEMS_BATCH_SIZE", default=100)
# Page size asked for on list calls (Pleo's maximum is undocumented; the sandbox caps at 100).
PLEO_PAGE_SIZE = env.int("PLEO_PAGE_SIZE", default=100)

# The per-company lease of the detect-and-start flow.
COMPANY_LEASE_SECONDS = env.float("COMPANY_LEASE_SECONDS", default=120.0)
COMPANY_LEASE_RENEW_SECONDS = env.float("COMPANY_LEASE_RENEW_SECONDS", default=30.0)
# Every worker process runs the recovery sweep this often (seconds; 0: only at spawn and on the
# maintenance schedule), so a crashed run's company is resumed soon after its lease lapses.
RECOVERY_SWEEP_SECONDS = env.float("RECOVERY_SWEEP_SECONDS", default=15.0)
# The sweep retries a company whose last run left work unfinished (paused, failed) no sooner
# than this after that run ended (seconds). A crashed run's company is taken over at once.
RECOVERY_RETRY_SECONDS = env.float("RECOVERY_RETRY_SECONDS", default=60.0)
# Allowance for clock skew when deciding that a pending job has expired.
EXPIRY_CLOCK_SKEW_SECONDS = env.float("EXPIRY_CLOCK_SKEW_SECONDS", default=60.0)

# Scale (exports.services.budget, exports.tasks): the request budget shared by every process, in
# the database or in Redis when REDIS_URL is set; 0 switches it off. Scope: credential,
# oauth_client or global. The window is for tests; Pleo's limit is per minute.
PLEO_RATE_LIMIT_PER_MINUTE = env.int("PLEO_RATE_LIMIT_PER_MINUTE", default=500)
PLEO_RATE_LIMIT_SCOPE = env.str("PLEO_RATE_LIMIT_SCOPE", default="credential")
PLEO_RATE_LIMIT_BACKEND = env.str("PLEO_RATE_LIMIT_BACKEND", default="auto")
PLEO_RATE_LIMIT_WINDOW_SECONDS = env.float("PLEO_RATE_LIMIT_WINDOW_SECONDS", default=60.0)
# Requests that may go at once (0: half the limit); the steady rate is the limit minus the burst.
PLEO_RATE_LIMIT_BURST = env.int("PLEO_RATE_LIMIT_BURST", default=0)
# Company runs at once across every worker and machine (0: no bound but the worker count).
MAX_CONCURRENT_COMPANIES = env.int("MAX_CONCURRENT_COMPANIES", default=0)
# The poll tick spreads its companies over this many slices of the interval (default: one per
# minute of PLEO_POLL_INTERVAL_MINUTES; 1 fires all at once) and queues them this many per task.
PLEO_POLL_SLICES = env.int("PLEO_POLL_SLICES", default=0)
PLEO_POLL_BATCH_SIZE = env.int("PLEO_POLL_BATCH_SIZE", default=25)

AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=90)
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=7)

# --- Worker (django-q2) -----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_WORKERS = env.int("Q_WORKERS", default=1)
Q_TIMEOUT = env.int("Q_TIMEOUT", default=900)
Q_CLUSTER = {
    "name": "pleo-export-bridge",
    "workers": Q_WORKERS,
    # A task is killed after `timeout` seconds; the broker re-delivers an unacknowledged task after
    # `retry` seconds, so `retry` must be clearly above `timeout` or one task runs twice.
    "timeout": Q_TIMEOUT,
    "retry": Q_TIMEOUT + 300,
    # Our own tables own retries: a failed task is acknowledged and attempted at most twice.
    "max_attempts": 2,
    "ack_failures": True,
    # After a scheduler outage, run a missed schedule once, not once per missed interval.
    "catch_up": False,
    "save_limit": 1000,
    "label": "Worker queue",
    "poll": 0.5,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Error reports (500 page, admin mail) also hide secret query parameters (?code=…&state=…).
DEFAULT_EXCEPTION_REPORTER_FILTER = "exports.error_reports.SecretQueryReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "exports.error_reports.SecretQueryExceptionReporter"

# --- Notifications (exports.notifications) -------------------------------------------------------
# Email through Django's email backend. EMAIL_URL: smtp://user:password@host:587 with smtp+tls:// or
# smtp+ssl:// for TLS, consolemail:// (print), memorymail:// (tests), dummymail:// (discard).
# Default: consolemail:// with DEBUG (a fresh checkout never fails on mail), else a local MTA.
# Providers: EMAIL_BACKEND=anymail.backends.<provider>.EmailBackend (install django-anymail) with
# its settings as ANYMAIL_<NAME> variables (ANYMAIL_POSTMARK_SERVER_TOKEN=… → ANYMAIL dict).
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
for _name in (
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_FILE_PATH",
):
    if _email.get(_name) not in (None, ""):
        globals()[_name] = _email[_name]
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
# Seconds an SMTP connection may take (Django's default is none: a hung server would hang).
EMAIL_TIMEOUT = env.float(
    "EMAIL_TIMEOUT", default=float(_email.get("OPTIONS", {}).get("TIMEOUT", 10))
)
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_") and value
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="pleo-export-bridge@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL  # the sender of Django's own error mail too
# The integrator's addresses (comma-separated); companies add their bookkeepers' in the admin.
NOTIFY_EMAILS = env.list("NOTIFY_EMAILS", default=[])

# --- Xero (exports.xero; docs/xero-openapi/README.md) ---------------------------------------
# The Xero app's OAuth 2.0 client ("Connect Xero" on a company's admin page). Register
# <PUBLIC_BASE_URL>/oauth/xero/callback/ as its redirect URI at Xero.
XERO_CLIENT_ID = env.str("XERO_CLIENT_ID", default="")
XERO_CLIENT_SECRET = env.str("XERO_CLIENT_SECRET", default="")
XERO_SCOPES = " ".join(
    env.str(
        "XERO_SCOPES",
        default="accounting.manualjournals accounting.invoices accounting.contacts "
        "accounting.settings.read accounting.attachments offline_access",
    ).split()
)
XERO_API_BASE_URL = env.str("XERO_API_BASE_URL", default="https://api.xero.com").rstrip("/")
XERO_IDENTITY_BASE_URL = env.str(
    "XERO_IDENTITY_BASE_URL", default="https://identity.xero.com"
).rstrip("/")
XERO_LOGIN_BASE_URL = env.str("XERO_LOGIN_BASE_URL", default="https://login.xero.com").rstrip("/")
# Xero tokens and the client secret only go to these hosts (exact, https, port 443); loopback
# (the local Xero) only with DEBUG, PLEO_SANDBOX or XERO_SANDBOX on.
XERO_ALLOWED_HOSTS = [
    host.strip().lower()
    for host in env.list(
        "XERO_ALLOWED_HOSTS",
        default=["api.xero.com", "identity.xero.com", "login.xero.com"],
    )
    if host.strip()
]
XERO_ALLOW_LOOPBACK = DEBUG or PLEO_SANDBOX or XERO_SANDBOX
# Booking (exports.services.xero_booking): how long a run waits inside itself for a spent Xero
# minute budget (longer waits defer the run), and the web app the booked documents link to.
XERO_BUDGET_WAIT_SECONDS = env.float("XERO_BUDGET_WAIT_SECONDS", default=90.0)
XERO_WEB_APP_URL = env.str("XERO_WEB_APP_URL", default="https://go.xero.com").rstrip("/")


class _WebhookUrl(str):
    """A Slack-style incoming-webhook URL: its path is the secret that lets anyone post. ``repr``
    (Django's error pages and ``diffsettings`` show settings by it) names the host only."""

    def __repr__(self) -> str:
        from urllib.parse import urlsplit

        return repr(f"{urlsplit(self).scheme}://{urlsplit(self).hostname}/…") if self else "''"


# A Slack-compatible incoming webhook (POST {"text": …}); empty: no webhook messages.
NOTIFY_WEBHOOK_URL = _WebhookUrl(env.str("NOTIFY_WEBHOOK_URL", default=""))
# At most one message per company (or credential) and kind in this many seconds; what comes
# within it is recorded and sent as a digest after it.
NOTIFY_WINDOW_SECONDS = env.float("NOTIFY_WINDOW_SECONDS", default=3600.0)

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "filters": {"client_fault_as_warning": {"()": "exports.log_filters.ClientFaultAsWarning"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL},
        # urllib3 logs full URLs at DEBUG; our client logs what matters itself.
        "urllib3": {"level": "WARNING"},
        # A bad Host header or an oversized form is the client's doing: WARNING, not ERROR.
        **{name: {"filters": ["client_fault_as_warning"]} for name in CLIENT_FAULT_LOGGERS},
    },
}

# --- Receipts (exports.receipts) --------------------------------------------------------------
# The files of export items (receipts, invoices), fetched from Pleo's pre-signed URLs before the
# item is booked and archived under a content address in the named storage "receipts". Files are
# served only through the admin's checked download view, never from a public URL.
# RECEIPTS_STORAGE: local (a folder, RECEIPTS_ROOT) or s3 (django-storages, the AWS_* below).
RECEIPTS_STORAGE = env.str("RECEIPTS_STORAGE", default="local").strip().lower()
RECEIPTS_ROOT = env.str("RECEIPTS_ROOT", default=str(BASE_DIR / "var" / "receipts"))
if RECEIPTS_STORAGE == "s3":
    STORAGES["receipts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME", default=""),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_S3_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("AWS_LOCATION", default=""),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
        },
    }
elif RECEIPTS_STORAGE == "local":
    STORAGES["receipts"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": RECEIPTS_ROOT, "base_url": None},
    }
else:
    raise ImproperlyConfigured(f"RECEIPTS_STORAGE={RECEIPTS_STORAGE!r}: use local or s3")
# Downloads at once per job (threads), timeouts (seconds), attempts on a 5xx or timeout.
RECEIPTS_DOWNLOAD_CONCURRENCY = env.int("RECEIPTS_DOWNLOAD_CONCURRENCY", default=4)
RECEIPTS_CONNECT_TIMEOUT = env.float("RECEIPTS_CONNECT_TIMEOUT", default=5.0)
RECEIPTS_READ_TIMEOUT = env.float("RECEIPTS_READ_TIMEOUT", default=30.0)
RECEIPTS_MAX_ATTEMPTS = env.int("RECEIPTS_MAX_ATTEMPTS", default=3)
RECEIPTS_BACKOFF_BASE = env.float("RECEIPTS_BACKOFF_BASE", default=0.5)
RECEIPTS_BACKOFF_MAX = env.float("RECEIPTS_BACKOFF_MAX", default=8.0)
# A file over this many bytes (declared or received) fails its item.
RECEIPTS_MAX_BYTES = env.int("RECEIPTS_MAX_BYTES", default=30 * 1024 * 1024)
# The types accepted, judged by the file's content (magic numbers), not by what Pleo declares.
RECEIPTS_ACCEPTED_TYPES = [
    t.strip().lower()
    for t in env.list(
        "RECEIPTS_ACCEPTED_TYPES",
        default=["pdf", "jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx", "txt"],
    )
    if t.strip()
]
# Hosts receipt URLs may point at (exact names, https); empty: any https host.
RECEIPTS_ALLOWED_HOSTS = [h.strip().lower() for h in env.list("RECEIPTS_ALLOWED_HOSTS", default=[])]
# On: an item whose declared file cannot be fetched or is refused fails. Off: it is booked
# without that file, and the audit table says so.
RECEIPTS_REQUIRED = env.bool("RECEIPTS_REQUIRED", default=True)

# Reconciliation (exports/services/reconciliation.py): "monthly" adds a schedule (ensure_schedules)
# that reconciles last month of every active company and notifies when anything is flagged.
RECONCILIATION_SCHEDULE = env.str("RECONCILIATION_SCHEDULE", default="")
if RECONCILIATION_SCHEDULE not in ("", "monthly"):
    raise ImproperlyConfigured("RECONCILIATION_SCHEDULE must be empty (off) or 'monthly'.")
