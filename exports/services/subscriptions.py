"""Pleo webhook subscriptions of a credential: subscribe, unsubscribe, rotate the secret, prune.

Admin-time actions. Each returns a short message for the operator and raises
:class:`SubscriptionError` (with a message that says what state things are in) on failure. No
secret appears in a message or a log line. Pleo is called outside any database transaction.

Pleo has no "rotate secret" call, so a rotation is a new subscription (new secret) created beside
the old one; its secret is stored before the old subscription is deleted, and the old secret stays
accepted until ``retire_after``. :func:`webhook_secrets_prune` removes secrets past that time.

A subscription that must change (re-subscribe: another URL, inactive, an event type missing) is
updated in place only when Pleo holds no ``endpointAuth``/``customHeaders`` for it: our PUT body
carries neither and would silently clear them. Otherwise it is replaced the way a rotation does
it (new subscription, its secret stored, then the old one deleted), so nothing Pleo holds is lost
without a trace. Each credential keeps one subscription: webhooks are a hint that makes detection
fast; polling is what guarantees it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from exports import clock
from exports.models import Credential, WebhookEndpoint
from exports.pleo import (
    PleoClient,
    PleoError,
    PleoNotFound,
    PleoOutcomeUnknown,
    Subscription,
    SubscriptionStatus,
    WebhookEventType,
)
from exports.services.companies import (
    webhook_endpoint_add_secret,
    webhook_endpoint_ensure,
    webhook_endpoint_url,
)
from exports.services.credentials import CredentialUnusable, pleo_client_for_credential
from exports.services.webhooks import webhook_secret_retire_after

logger = logging.getLogger(__name__)

EVENT_TYPES = (WebhookEventType.EXPORT_JOB_CREATED.value,)
DEFAULT_OVERLAP = timedelta(hours=24)
SAVED_FIELDS = [
    "signing_secrets_ciphertext",
    "pleo_subscription_id",
    "subscription_status",
    "updated_at",
]


class SubscriptionError(Exception):
    """A subscription action failed; ``str()`` is the operator-facing message."""


def _client(credential: Credential) -> PleoClient:
    try:
        return pleo_client_for_credential(credential=credential, run_id=None)
    except CredentialUnusable as exc:
        raise SubscriptionError(str(exc)) from None


def _pleo_failure(action: str, exc: PleoError, *, hint: str = "") -> SubscriptionError:
    text = f"{action} failed: {exc}."
    if isinstance(exc, PleoOutcomeUnknown):
        text += " Pleo may or may not have done it; running the action again is safe."
    if hint:
        text += f" {hint}"
    return SubscriptionError(text)


def _wanted(subscription: Subscription, url: str) -> bool:
    return (
        subscription.endpoint_url == url
        and set(EVENT_TYPES) <= set(subscription.event_types)
        and subscription.status == SubscriptionStatus.ACTIVE
    )


def _retire_others(
    endpoint: WebhookEndpoint, *, keep_subscription_id: str | None, until: datetime
) -> None:
    """Give every secret that does not belong to ``keep_subscription_id`` a ``retire_after``
    (those already retiring keep theirs, unless later than ``until``). Not saved here."""
    entries = endpoint.secret_entries()
    for entry in entries:
        if keep_subscription_id and entry.get("subscription_id") == keep_subscription_id:
            entry["retire_after"] = None
            continue
        current = webhook_secret_retire_after(entry=entry)
        if current is None or current > until:
            entry["retire_after"] = until.isoformat()
    endpoint.set_secret_entries(entries)


def _store(
    endpoint: WebhookEndpoint,
    subscription: Subscription,
    secret: str,
    *,
    retire_others_at: datetime | None,
) -> None:
    subscription_id = str(subscription.id)
    with transaction.atomic():
        webhook_endpoint_add_secret(
            endpoint=endpoint, secret=secret, subscription_id=subscription_id
        )
        if retire_others_at is not None:
            _retire_others(endpoint, keep_subscription_id=subscription_id, until=retire_others_at)
        endpoint.pleo_subscription_id = subscription_id
        endpoint.subscription_status = str(subscription.status)
        endpoint.save(update_fields=SAVED_FIELDS)


def webhooks_subscribe(*, credential: Credential, overlap: timedelta = DEFAULT_OVERLAP) -> str:
    """Make sure one active Pleo subscription for ``v1.export-job.created`` points at this
    credential's webhook URL, and that its secret is stored. Safe to run again: it reuses the
    stored subscription, or one found pointing at our URL, before creating one; further
    subscriptions pointing at our URL are deleted. Secrets of other subscriptions retire after
    ``overlap``."""
    endpoint = webhook_endpoint_ensure(credential=credential)
    url = webhook_endpoint_url(endpoint=endpoint)
    notes: list[str] = []
    with _client(credential) as client:
        try:
            found: Subscription | None = None
            if endpoint.pleo_subscription_id:
                try:
                    found = client.get_subscription(endpoint.pleo_subscription_id)
                except (PleoNotFound, ValueError):
                    notes.append(
                        f"the stored subscription {endpoint.pleo_subscription_id} was gone"
                    )
                if found is not None and found.endpoint_url != url:
                    notes.append(f"subscription {found.id} pointed at {found.endpoint_url}")
            ours = [s for s in client.list_subscriptions() if s.endpoint_url == url]
            if found is None and ours:
                ours.sort(key=lambda s: (not _wanted(s, url), s.created_at))
                found = ours[0]
            replaced: Subscription | None = None
            if found is None:
                subscription = client.create_subscription(url, EVENT_TYPES)
                verb = "Created"
            elif _wanted(found, url):
                subscription = found
                verb = "Kept"
            elif found.carries_delivery_settings:
                # A PUT would clear what Pleo holds for it: replace it, as a rotation does.
                subscription = client.create_subscription(url, EVENT_TYPES)
                replaced = found
                verb = "Replaced"
                notes.append(
                    f"subscription {found.id} carried endpointAuth or customHeaders, which an "
                    f"update would have cleared: replaced by {subscription.id}"
                )
            else:
                subscription = client.update_subscription(
                    found.id,
                    endpoint_url=url,
                    event_types=sorted(set(found.event_types) | set(EVENT_TYPES)),
                    status=SubscriptionStatus.ACTIVE,
                )
                verb = "Updated"
            keep = {subscription.id} | ({replaced.id} if replaced is not None else set())
            for extra in ours:
                if extra.id in keep:
                    continue
                try:
                    client.delete_subscription(extra.id)
                except PleoNotFound:
                    pass
                notes.append(f"removed duplicate subscription {extra.id}")
            secret = client.get_subscription_secret(subscription.id)
        except PleoError as exc:
            raise _pleo_failure("Subscribing to Pleo webhooks", exc) from None
        # Stored before the replaced subscription goes: deliveries signed either way verify.
        _store(endpoint, subscription, secret, retire_others_at=clock.now() + overlap)
        if replaced is not None:
            notes.append(_delete_replaced(client, replaced, subscription))
    logger.info(
        "Webhook subscription %s for credential %s: %s", subscription.id, credential.pk, verb
    )
    message = f"{verb} Pleo webhook subscription {subscription.id} for {url}."
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return message


def _delete_replaced(client: PleoClient, old: Subscription, new: Subscription) -> str:
    try:
        client.delete_subscription(old.id)
    except PleoNotFound:
        return f"the replaced subscription {old.id} was already gone"
    except PleoError as exc:
        raise _pleo_failure(
            f"Deleting the replaced subscription {old.id}",
            exc,
            hint=(
                f"The new subscription {new.id} and its secret are in use; the old one still "
                f"exists at Pleo: run subscribe to remove it."
            ),
        ) from None
    return f"the replaced subscription {old.id} was deleted"


def webhooks_unsubscribe(*, credential: Credential, overlap: timedelta = DEFAULT_OVERLAP) -> str:
    """Delete the credential's Pleo subscription (and any other pointing at our URL). One that is
    already gone is fine. The stored secrets retire after ``overlap`` (deliveries in flight)."""
    endpoint = webhook_endpoint_ensure(credential=credential)
    url = webhook_endpoint_url(endpoint=endpoint)
    deleted: list[str] = []
    with _client(credential) as client:
        try:
            ids = [endpoint.pleo_subscription_id] if endpoint.pleo_subscription_id else []
            ids += [str(s.id) for s in client.list_subscriptions() if s.endpoint_url == url]
            for subscription_id in dict.fromkeys(ids):
                try:
                    client.delete_subscription(subscription_id)
                    deleted.append(subscription_id)
                except PleoNotFound:
                    pass
        except PleoError as exc:
            raise _pleo_failure("Unsubscribing from Pleo webhooks", exc) from None
    _retire_others(endpoint, keep_subscription_id=None, until=clock.now() + overlap)
    endpoint.pleo_subscription_id = ""
    endpoint.subscription_status = ""
    endpoint.save(update_fields=SAVED_FIELDS)
    logger.info("Webhook subscriptions of credential %s deleted: %s", credential.pk, deleted)
    if not deleted:
        return f"No Pleo webhook subscription for {url} was left; nothing to delete."
    return f"Deleted Pleo webhook subscription {', '.join(deleted)} for {url}."


def webhook_secret_rotate(*, credential: Credential, overlap: timedelta = DEFAULT_OVERLAP) -> str:
    """Replace the signing secret without rejecting any delivery: create a new subscription, store
    its secret beside the old one, delete the old subscription, and keep accepting the old secret
    until ``now + overlap``."""
    endpoint = webhook_endpoint_ensure(credential=credential)
    old_id = endpoint.pleo_subscription_id
    if not old_id:
        raise SubscriptionError(
            "This credential has no Pleo webhook subscription to rotate: subscribe first."
        )
    url = webhook_endpoint_url(endpoint=endpoint)
    with _client(credential) as client:
        try:
            new = client.create_subscription(url, EVENT_TYPES)
        except PleoError as exc:
            raise _pleo_failure(
                "Creating the new subscription", exc, hint="The old secret is still in use."
            ) from None
        try:
            secret = client.get_subscription_secret(new.id)
        except PleoError as exc:
            try:
                client.delete_subscription(new.id)
                cleanup = f"The new subscription {new.id} was deleted again."
            except PleoError:
                cleanup = (
                    f"The new subscription {new.id} could not be deleted: run subscribe to tidy up."
                )
            raise _pleo_failure(
                "Fetching the new subscription's secret",
                exc,
                hint=f"The old secret is still in use. {cleanup}",
            ) from None
        # Stored before the old subscription goes: deliveries signed either way verify.
        _store(endpoint, new, secret, retire_others_at=clock.now() + overlap)
        try:
            client.delete_subscription(old_id)
            old_note = f"old subscription {old_id} deleted"
        except PleoNotFound:
            old_note = f"old subscription {old_id} was already gone"
        except PleoError as exc:
            raise _pleo_failure(
                f"Deleting the old subscription {old_id}",
                exc,
                hint=(
                    f"The new subscription {new.id} and its secret are in use; the old one "
                    f"still exists at Pleo: run subscribe to remove it."
                ),
            ) from None
    logger.info(
        "Webhook secret of credential %s rotated: subscription %s replaced by %s",
        credential.pk,
        old_id,
        new.id,
    )
    hours = overlap.total_seconds() / 3600
    return (
        f"Rotated the webhook secret: new subscription {new.id}; {old_note}; the old secret is "
        f"accepted for another {hours:g} h."
    )


def webhook_secrets_prune(*, endpoint: WebhookEndpoint) -> str:
    """Drop signing secrets whose ``retire_after`` has passed."""
    now = clock.now()
    entries = endpoint.secret_entries()
    kept = []
    for entry in entries:
        retire_after = webhook_secret_retire_after(entry=entry)
        if retire_after is None or retire_after > now:
            kept.append(entry)
    removed = len(entries) - len(kept)
    if removed:
        endpoint.set_secret_entries(kept)
        endpoint.save(update_fields=["signing_secrets_ciphertext", "updated_at"])
    return f"Removed {removed} retired webhook secret(s); {len(kept)} kept."
