"""The request budget: how many Pleo requests the whole service may send, shared by every process.

Pleo allows 600 requests a minute and asks integrations to stay under 500, retries included
(``docs/pleo-export-api.md`` §6.2). A client's own 429 handling cannot keep that promise once
several worker processes, on several machines, call Pleo for many companies: this budget does.
It is ours, on top of Pleo's: a 429 that Pleo still sends is retried by the client as before.

**Where.** In the database (:class:`exports.models.RequestBudget`, one row per key) by default,
or in Redis when ``REDIS_URL`` is set (one hash per key, updated by one Lua script). Either way a
decision is one atomic statement, so processes and machines share one budget.

**Which key.** ``PLEO_RATE_LIMIT_SCOPE``: ``credential`` (default: one budget per stored
credential, i.e. per API key or OAuth connection), ``oauth_client`` (OAuth credentials of the
same client id share one; API keys stay per credential) or ``global`` (one for the service).

**How much.** ``PLEO_RATE_LIMIT_PER_MINUTE`` (default 500; 0 switches the budget off). The rule
is GCRA (the "generic cell rate algorithm", a token bucket kept as one timestamp): with limit
``L`` per window ``W``, a burst ``B`` (``PLEO_RATE_LIMIT_BURST``, default ``L // 2``) and a steady
rate of ``L - B`` per ``W``.
``n`` granted requests always span at least ``(n - B) * W / (L - B)`` seconds, so ``L + 1`` of
them span more than ``W``: any ``W``-long window holds at most ``L``, whatever the number of
processes (``tests/test_budget.py`` checks it with real processes). Why half: a run that finds
the budget spent is picked up again by the every-minute sweep, so what a deferred company gets
per pickup is the burst, and a resumed job re-reads its items before it goes on; the steady rate
(250 a minute at the defaults) is what continuous polling on one key gets.

**When spent.** The client's ``before_request`` hook (:class:`BudgetHook`) raises
:class:`exports.pleo.errors.BudgetExhausted` with ``retry_at`` (when there is room again) and
nothing is sent. A worker run then releases its lease and records when the company may run
again; the sweep picks it up (``exports.services.start_flow``); ``check_exports`` waits, bounded.

Clocks: the Redis variant uses the Redis server's clock (one clock for all machines); the
database variant uses each process's wall clock, so keep the machines' clocks in sync (NTP).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, Value, When

from exports import clock
from exports.models import Credential
from exports.pleo import BudgetExhausted

logger = logging.getLogger(__name__)


class Scope(StrEnum):
    """``PLEO_RATE_LIMIT_SCOPE``: what one budget key covers."""

    CREDENTIAL = "credential"
    OAUTH_CLIENT = "oauth_client"
    GLOBAL = "global"


class Backend(StrEnum):
    """``PLEO_RATE_LIMIT_BACKEND``: where the budget lives (``auto``: Redis when ``REDIS_URL``)."""

    AUTO = "auto"
    REDIS = "redis"
    DATABASE = "database"


# Retry-at offset used when the budget store itself cannot be asked (fail closed).
UNAVAILABLE_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``window`` seconds, as GCRA parameters."""

    limit: int
    window: float = 60.0
    burst: int = 0  # 0: half the limit

    def __post_init__(self) -> None:
        if self.limit < 2:
            raise ValueError("a request budget needs a limit of at least 2 per window")
        if self.window <= 0:
            raise ValueError("the budget window must be positive")
        burst = self.burst or self.limit // 2
        object.__setattr__(self, "burst", min(max(1, burst), self.limit - 1))

    @property
    def interval(self) -> float:
        """Seconds between two requests at the steady rate (``limit - burst`` per window)."""
        return self.window / (self.limit - self.burst)

    @property
    def tolerance(self) -> float:
        """How far ahead of now the schedule may run (the burst, in seconds)."""
        return (self.burst - 1) * self.interval

    def room(self, *, backlog: float, within: float) -> int:
        """How many requests this rate grants from now until ``within`` seconds from now, to a
        key whose schedule (``tat``) runs ``backlog`` seconds ahead of now (0: idle or unused).
        Request ``n`` (from 1) may go ``backlog + (n - 1) * interval - tolerance`` from now."""
        if within < 0:
            return 0
        ahead = within + self.tolerance - max(backlog, 0.0)
        # (A millionth of an interval for the float sums the stored schedule is made of.)
        return 0 if ahead < 0 else math.floor(ahead / self.interval + 1e-6) + 1

    def seconds_for(self, *, backlog: float, calls: int) -> float:
        """The shortest time from now in which ``calls`` requests are granted (see ``room``)."""
        if calls <= 0:
            return 0.0
        return max(0.0, max(backlog, 0.0) + (calls - 1) * self.interval - self.tolerance)


def budget_rate() -> Rate | None:
    """The configured rate, or None when the budget is switched off (limit 0)."""
    limit = int(settings.PLEO_RATE_LIMIT_PER_MINUTE or 0)
    if limit <= 0:
        return None
    return Rate(
        limit=limit,
        window=float(settings.PLEO_RATE_LIMIT_WINDOW_SECONDS),
        burst=int(settings.PLEO_RATE_LIMIT_BURST or 0),
    )


def budget_scope() -> str:
    value = settings.PLEO_RATE_LIMIT_SCOPE
    return Scope(value) if value in tuple(Scope) else Scope.CREDENTIAL


def budget_key_for(*, credential: Credential) -> str:
    """The budget key a credential's requests count against, under the configured scope.

    A credential's key carries its creation time as well as its id, so a credential created
    again with a recycled id (a restored or flushed database) never inherits a spent budget.
    """
    chosen = budget_scope()
    if chosen == Scope.GLOBAL:
        return Scope.GLOBAL.value
    if (
        chosen == Scope.OAUTH_CLIENT
        and credential.kind == Credential.Kind.OAUTH
        and credential.oauth_client_id
    ):
        return f"oauth_client:{credential.oauth_client_id}"
    created = int(credential.created_at.timestamp() * 1000) if credential.created_at else 0
    return f"credential:{credential.pk}:{created}"


def budget_key_label(*, key: str) -> str:
    """The key as people read it (``credential:12``)."""
    return ":".join(key.split(":")[:2])


@dataclass(frozen=True)
class Decision:
    granted: bool
    at: float  # the budget's clock when it decided (epoch seconds)
    retry_at: float  # refused: when there is room again; granted: equal to ``at``


@dataclass(frozen=True)
class Usage:
    """What the admin shows for one key."""

    key: str
    limit: int
    used_this_minute: int
    refused_this_minute: int
    spent_until: datetime | None  # set while the budget is spent

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used_this_minute / self.limit)) if self.limit else 0


# --- Backends -------------------------------------------------------------------------------------


class DatabaseBudget:
    """One ``RequestBudget`` row per key; a grant is one conditional UPDATE."""

    name = "database"

    def __init__(self, now=time.time) -> None:
        self._now = now

    def consume(self, key: str, rate: Rate) -> Decision:
        from exports.models import RequestBudget

        for _ in range(3):
            now = self._now()
            minute = int(now // 60)
            with connection.cursor() as cursor:
                cursor.execute(
                    _grant_sql(),
                    [now, now, rate.interval, minute, minute, minute, key, now + rate.tolerance],
                )
                granted = cursor.rowcount
            if granted:
                return Decision(True, now, now)
            refused = RequestBudget.objects.filter(key=key, tat__gt=now + rate.tolerance).update(
                used=Case(When(minute=minute, then=F("used")), default=Value(0)),
                refused=Case(When(minute=minute, then=F("refused") + 1), default=Value(1)),
                minute=Value(minute),
            )
            if refused:
                tat = RequestBudget.objects.filter(key=key).values_list("tat", flat=True).first()
                if tat is not None:
                    return Decision(False, now, max(now, tat - rate.tolerance))
            else:
                RequestBudget.objects.get_or_create(key=key)  # first use of this key
        now = self._now()
        return Decision(False, now, now + rate.interval)

    def backlog(self, key: str) -> float:
        from exports.models import RequestBudget

        tat = RequestBudget.objects.filter(key=key).values_list("tat", flat=True).first()
        return max((tat or 0.0) - self._now(), 0.0)

    def usage(self, keys: list[str], rate: Rate) -> dict[str, Usage]:
        from exports.models import RequestBudget

        now = self._now()
        rows = RequestBudget.objects.filter(key__in=keys).values_list(
            "key", "tat", "minute", "used", "refused"
        )
        return {
            key: _usage(key, rate, now, tat, minute, used, refused)
            for key, tat, minute, used, refused in rows
        }


@functools.cache
def _grant_sql() -> str:
    """The grant, one conditional UPDATE: ``tat = max(tat, now) + interval`` and this minute's
    count, only while ``tat <= now + tolerance``. Plain SQL (names from the model's metadata):
    it runs before every Pleo request, and the same UPDATE built with the ORM's expressions
    cost more than the request to a local Pleo."""
    from exports.models import RequestBudget

    meta = RequestBudget._meta
    name = {f: connection.ops.quote_name(meta.get_field(f).column) for f in _BUDGET_COLUMNS}
    tat, minute, used, refused, key = (name[f] for f in _BUDGET_COLUMNS)
    return (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET "  # noqa: S608 (names only)
        f"{tat} = CASE WHEN {tat} > %s THEN {tat} ELSE %s END + %s, "
        f"{used} = CASE WHEN {minute} = %s THEN {used} + 1 ELSE 1 END, "
        f"{refused} = CASE WHEN {minute} = %s THEN {refused} ELSE 0 END, "
        f"{minute} = %s WHERE {key} = %s AND {tat} <= %s"
    )


_BUDGET_COLUMNS = ("tat", "minute", "used", "refused", "key")

_REDIS_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local state = redis.call('HMGET', KEYS[1], 'tat', 'minute')
local tat = tonumber(state[1]) or 0
local same = tonumber(state[2]) == minute
if tat > now + tolerance then
  if same then
    redis.call('HINCRBY', KEYS[1], 'refused', 1)
  else
    redis.call('HSET', KEYS[1], 'minute', minute, 'used', 0, 'refused', 1)
  end
  redis.call('EXPIRE', KEYS[1], ttl)
  return {0, string.format('%.6f', tat - tolerance), string.format('%.6f', now)}
end
local new = math.max(tat, now) + interval
if same then
  redis.call('HINCRBY', KEYS[1], 'used', 1)
else
  redis.call('HSET', KEYS[1], 'minute', minute, 'used', 1, 'refused', 0)
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', new))
redis.call('EXPIRE', KEYS[1], ttl)
return {1, string.format('%.6f', new), string.format('%.6f', now)}
"""


class RedisBudget:
    """One hash per key, updated by one Lua script on the Redis server's clock."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_REDIS_SCRIPT)
        if not prefix:
            cluster = settings.Q_CLUSTER.get("name", "pleo-export-bridge")
            database = settings.DATABASES["default"].get("NAME", "")
            prefix = f"{cluster}:{database}:budget:"  # one Redis, several databases: apart
        self._prefix = prefix

    def consume(self, key: str, rate: Rate) -> Decision:
        ttl = int(max(rate.window * 2, 120))
        granted, value, now = self._script(
            keys=[self._prefix + key], args=[repr(rate.interval), repr(rate.tolerance), ttl]
        )
        now = float(now)
        if int(granted):
            return Decision(True, now, now)
        return Decision(False, now, max(now, float(value)))

    def backlog(self, key: str) -> float:
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.hget(self._prefix + key, "tat")
        (seconds, micros), tat = pipe.execute()
        return max(float(tat or 0.0) - (seconds + micros / 1_000_000), 0.0)

    def usage(self, keys: list[str], rate: Rate) -> dict[str, Usage]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        for key in keys:
            pipe.hmget(self._prefix + key, "tat", "minute", "used", "refused")
        answers = pipe.execute()
        seconds, micros = answers[0]
        now = seconds + micros / 1_000_000
        out = {}
        for key, (tat, minute, used, refused) in zip(keys, answers[1:], strict=True):
            if tat is None and used is None:
                continue
            out[key] = _usage(
                key, rate, now, float(tat or 0), int(minute or 0), int(used or 0), int(refused or 0)
            )
        return out


def _usage(key, rate: Rate, now, tat, minute, used, refused) -> Usage:
    current = minute == int(now // 60)
    spent = tat - rate.tolerance > now
    return Usage(
        key=key,
        limit=rate.limit,
        used_this_minute=used if current else 0,
        refused_this_minute=refused if current else 0,
        spent_until=_as_product_time(tat - rate.tolerance, now) if spent else None,
    )


_backends: dict[tuple, DatabaseBudget | RedisBudget] = {}


def budget_backend_name() -> str:
    chosen = settings.PLEO_RATE_LIMIT_BACKEND or Backend.AUTO
    if chosen == Backend.AUTO:
        return Backend.REDIS if settings.REDIS_URL else Backend.DATABASE
    return chosen


def budget_backend() -> DatabaseBudget | RedisBudget:
    name = budget_backend_name()
    url = settings.REDIS_URL
    cache_key = (name, url if name == Backend.REDIS else "")
    found = _backends.get(cache_key)
    if found is None:
        found = RedisBudget(url) if name == Backend.REDIS else DatabaseBudget()
        _backends[cache_key] = found
    return found


def _as_product_time(epoch: float, budget_now: float) -> datetime:
    """A budget-clock instant as product time (``exports.clock``, which tests may shift)."""
    return clock.now() + timedelta(seconds=epoch - budget_now)


# --- The hook and the callers' helpers ----------------------------------------------------------


def budget_consume(*, key: str, rate: Rate | None = None) -> Decision:
    """Take one request from ``key``'s budget (at ``rate``, else the configured Pleo rate);
    raises ``BudgetExhausted`` when it is spent."""
    rate = rate or budget_rate()
    if rate is None:
        now = time.time()
        return Decision(True, now, now)
    try:
        decision = budget_backend().consume(key, rate)
    except Exception as exc:
        if budget_backend_name() != Backend.REDIS:
            raise
        # Fail closed: without the shared budget nobody may spend it.
        logger.error("Request budget unavailable (Redis): %s", type(exc).__name__)
        raise BudgetExhausted(
            f"the request budget store (Redis) is unreachable ({type(exc).__name__}); nothing "
            f"is sent until it answers",
            retry_at=clock.now() + timedelta(seconds=UNAVAILABLE_RETRY_SECONDS),
            key=key,
        ) from exc
    if not decision.granted:
        retry_at = _as_product_time(decision.retry_at, decision.at)
        raise BudgetExhausted(
            f"our request budget '{budget_key_label(key=key)}' ({rate.limit} requests per "
            f"{rate.window:g} s) is "
            f"spent; room again at {retry_at:%H:%M:%S} UTC",
            retry_at=retry_at,
            key=key,
        )
    return decision


def budget_backlog(*, key: str) -> float:
    """How far ahead of now ``key``'s schedule runs (seconds; 0 when idle): what
    :meth:`Rate.room` and :meth:`Rate.seconds_for` need. Nothing is taken from the budget. A
    store that cannot be asked (Redis) counts as spent for a day, as ``budget_consume`` fails
    closed."""
    try:
        return budget_backend().backlog(key)
    except Exception as exc:
        if budget_backend_name() != Backend.REDIS:
            raise
        logger.error("Request budget unavailable (Redis): %s", type(exc).__name__)
        return 86400.0


class BudgetHook:
    """``PleoClient(before_request=...)``: one budget request per attempt."""

    def __init__(self, key: str, rate: Rate | None = None) -> None:
        self.key = key
        self.rate = rate  # None: the configured Pleo rate (another service passes its own)

    def __call__(self, method: str, path: str) -> None:
        if self.rate is None:
            budget_consume(key=self.key)
        else:
            budget_consume(key=self.key, rate=self.rate)

    def __repr__(self) -> str:
        return f"BudgetHook({self.key!r})"


def budget_hook_for(*, credential: Credential) -> BudgetHook | None:
    """The hook for a client built from ``credential``; None when the budget is switched off."""
    if budget_rate() is None:
        return None
    return BudgetHook(budget_key_for(credential=credential))


def budget_usage_for(*, keys: list[str]) -> dict[str, Usage]:
    """Current use of each key (keys never used are left out). Empty when switched off."""
    rate = budget_rate()
    if rate is None or not keys:
        return {}
    try:
        return budget_backend().usage(list(dict.fromkeys(keys)), rate)
    except Exception as exc:
        if budget_backend_name() != Backend.REDIS:
            raise
        logger.warning("Request budget usage unavailable (Redis): %s", type(exc).__name__)
        return {}


def budget_usage_for_credential(*, credential: Credential) -> Usage | None:
    rate = budget_rate()
    if rate is None:
        return None
    key = budget_key_for(credential=credential)
    return budget_usage_for(keys=[key]).get(key) or Usage(key, rate.limit, 0, 0, None)


def budget_usage_describe(*, usage: Usage | None) -> str:
    """One line for the admin."""
    if usage is None:
        return "Switched off (PLEO_RATE_LIMIT_PER_MINUTE=0)."
    text = (
        f"{usage.used_this_minute} of {usage.limit} requests this minute "
        f"({usage.percent} %), budget '{budget_key_label(key=usage.key)}'"
    )
    if usage.refused_this_minute:
        text += f"; {usage.refused_this_minute} refused (runs deferred)"
    if usage.spent_until:
        text += f"; spent until {usage.spent_until.astimezone(UTC):%H:%M:%S} UTC"
    return text + "."
