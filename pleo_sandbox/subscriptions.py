"""Webhook subscriptions (v1) and who is told what.

* The v1 API: ``GET|POST /v1/subscriptions``, ``GET|PUT|DELETE /v1/subscriptions/{id}``, its
  secret and its activity log. A subscription belongs to the credential that created it; another
  credential gets 404. Deleting keeps it (``deletedAt``) but stops its deliveries, retries too.
* :meth:`Subscriptions.job_created_deliveries`: the ``v1.export-job.created`` deliveries for a new
  job (active subscriptions to the event whose owner sees the job's company), built under the
  store's lock; :meth:`Subscriptions.send` queues them on the dispatcher
  (:mod:`pleo_sandbox.webhooks`: signing, retries, the deliveries log) once the lock is released.
"""

from __future__ import annotations

import json
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.clock import iso
from pleo_sandbox.entities import (
    ENDPOINT_AUTH_TYPES,
    EVENT_TYPES,
    SUBSCRIPTION_STATUSES,
    Credential,
    Job,
    Subscription,
)
from pleo_sandbox.errors import ApiError
from pleo_sandbox.fields import bad_request, enum_field
from pleo_sandbox.signing import new_message_id, new_secret
from pleo_sandbox.store import Store
from pleo_sandbox.vocabulary import SubscriptionStatus
from pleo_sandbox.webhooks import Delivery, WebhookDispatcher


class Subscriptions:
    """The subscriptions in the store, and the dispatcher that delivers their webhooks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dispatcher = WebhookDispatcher(
            store.clock,
            schedule=lambda: store.switch("webhook_retry_schedule"),
            timeout=lambda: float(store.switch("webhook_timeout_seconds")),
            is_active=self.is_active,
        )

    def job_created_deliveries(self, job: Job) -> list[Delivery]:
        """One delivery of the job-created event per subscription that should get it."""
        data = {
            "companyId": job.company_id,
            "createdAt": iso(job.created_at),
            "createdBy": job.created_by,
            "expiresIn": job.expires_in,
            "id": job.id,
            "numberOfItems": len(job.items),
            "status": job.status,
        }
        deliveries = []
        for sub in sorted(self.store.subscriptions.values(), key=lambda s: s.seq):
            owner = self.store.credentials.get(sub.owner_id)
            if (
                sub.deleted_at is not None
                or sub.status != SubscriptionStatus.ACTIVE
                or not any(variants.is_job_created(t) for t in sub.event_types)
                or owner is None
                or owner.revoked
                or job.company_id not in self.store.visible_companies(owner)
            ):
                continue
            spelling = self.store.spelling()
            body = {"data": data, "eventId": self.store.new_id(), "eventType": spelling}
            deliveries.append(
                Delivery(
                    id=f"dlv_{self.store.rng.randbytes(8).hex()}",
                    webhook_id=new_message_id(self.store.rng),
                    event_id=body["eventId"],
                    event_type=spelling,
                    subscription_id=sub.id,
                    url=sub.endpoint_url,
                    secret=sub.secret,
                    custom_headers=dict(sub.custom_headers),
                    basic_auth=(
                        (sub.auth_username or "", sub.auth_password or "")
                        if sub.auth_type == "BASIC"
                        else None
                    ),
                    body=json.dumps(body, separators=(",", ":")).encode(),
                    job_id=job.id,
                )
            )
        return deliveries

    def send(self, deliveries: list[Delivery]) -> None:
        """Queue deliveries (call it with the store's lock released)."""
        for delivery in deliveries:
            self.dispatcher.enqueue(delivery)

    def is_active(self, subscription_id: str) -> bool:
        """Whether retries to this subscription go on (not deleted, still ``ACTIVE``)."""
        with self.store.lock:
            sub = self.store.subscriptions.get(subscription_id)
            return (
                sub is not None
                and sub.deleted_at is None
                and sub.status == SubscriptionStatus.ACTIVE
            )

    def live(self) -> list[dict]:
        """Every live subscription, with its owner credential id (control view, no secrets)."""
        with self.store.lock:
            return [
                {**s.to_api(self.store.spelling()), "ownerCredentialId": s.owner_id}
                for s in self.store.subscriptions.values()
                if s.deleted_at is None
            ]

    def _own(self, cred: Credential, subscription_id: str) -> Subscription:
        sub = self.store.subscriptions.get(subscription_id)
        if sub is None or sub.owner_id != cred.id or sub.deleted_at is not None:
            raise ApiError(404, "SUBSCRIPTION_NOT_FOUND", "Subscription not found.")
        return sub

    def _activity(self, sub: Subscription, cred: Credential, operation: str, text: str) -> None:
        sub.activities.append(
            {
                "id": self.store.new_id(),
                "subscriptionId": sub.id,
                "operationType": operation,
                "actorUrn": cred.actor_urn,
                "description": text,
                "createdAt": iso(self.store.clock.now()),
            }
        )

    def api_list_subscriptions(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        status = (query.get("status") or [None])[0]
        wanted: set[str] = set()
        for raw in query.get("event_types", []) + query.get("event_types[]", []):
            wanted.update(v for v in raw.split(",") if v)
        with self.store.lock:
            # Any spelling of the created event finds a subscription to it.
            spelling = self.store.spelling()
            wanted = set(variants.shown_event_types(wanted, spelling))
            rows = [
                s
                for s in self.store.subscriptions.values()
                if s.owner_id == cred.id
                and s.deleted_at is None
                and (status is None or s.status == status)
                and (
                    not wanted or wanted & set(variants.shown_event_types(s.event_types, spelling))
                )
            ]
            rows = self.store.ordered(rows, key=lambda s: s.seq)
            page, info = self.store.page(rows, query, {"createdAt": lambda s: s.created_at})
            return {"data": [s.to_api(self.store.spelling()) for s in page], "pagination": info}

    def api_create_subscription(self, cred: Credential, body: Any) -> dict:
        fields = _parse_subscription(body)
        with self.store.lock:
            now = self.store.clock.now()
            sub = Subscription(
                id=self.store.new_id(),
                owner_id=cred.id,
                secret=new_secret(self.store.rng),
                created_at=now,
                updated_at=now,
                seq=self.store.next_seq(),
                **fields,
            )
            self.store.subscriptions[sub.id] = sub
            self._activity(sub, cred, "CREATE", "Subscription created")
            return {"data": sub.to_api(self.store.spelling())}

    def api_get_subscription(self, cred: Credential, subscription_id: str) -> dict:
        with self.store.lock:
            sub = self._own(cred, subscription_id)
            return {"data": sub.to_api(self.store.spelling())}

    def api_update_subscription(self, cred: Credential, subscription_id: str, body: Any) -> dict:
        fields = _parse_subscription(body)
        with self.store.lock:
            sub = self._own(cred, subscription_id)
            for name, value in fields.items():
                setattr(sub, name, value)
            sub.updated_at = self.store.clock.now()
            self._activity(sub, cred, "UPDATE", "Subscription updated")
            return {"data": sub.to_api(self.store.spelling())}

    def api_delete_subscription(self, cred: Credential, subscription_id: str) -> None:
        with self.store.lock:
            sub = self._own(cred, subscription_id)
            sub.deleted_at = self.store.clock.now()
            sub.deleted_by = cred.actor_urn
            sub.updated_at = sub.deleted_at
            self._activity(sub, cred, "DELETE", "Subscription deleted")

    def api_subscription_secret(self, cred: Credential, subscription_id: str) -> dict:
        with self.store.lock:
            return {"data": {"secretKey": self._own(cred, subscription_id).secret}}

    def api_subscription_activities(
        self, cred: Credential, subscription_id: str, query: dict[str, list[str]]
    ) -> dict:
        with self.store.lock:
            sub = self._own(cred, subscription_id)
            wanted: set[str] = set()
            for raw in query.get("operation_types", []):
                wanted.update(v for v in raw.split(",") if v)
            rows = [a for a in sub.activities if not wanted or a["operationType"] in wanted]
            page, info = self.store.page(rows, query)
            return {"data": page, "pagination": info}


def _parse_subscription(body: Any) -> dict:
    """The body of ``POST|PUT /v1/subscriptions``, checked (400 on a mistake)."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.")
    url = body.get("endpointUrl")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad_request("'endpointUrl' must be an http(s) URL.")
    types = body.get("eventTypes")
    if not isinstance(types, list) or not types:
        raise bad_request("'eventTypes' must be a non-empty array.")
    for t in types:
        enum_field(t, EVENT_TYPES, "eventTypes")
    if len(set(types)) != len(types):
        raise bad_request("'eventTypes' must be unique.")
    wanted_status = body.get("status") or SubscriptionStatus.ACTIVE
    status = SubscriptionStatus(enum_field(wanted_status, SUBSCRIPTION_STATUSES, "status"))
    headers = body.get("customHeaders") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise bad_request("'customHeaders' must be an object of strings.")
    auth = body.get("endpointAuth") or {}
    if not isinstance(auth, dict):
        raise bad_request("'endpointAuth' must be an object.")
    auth_type = auth.get("type") or "NONE"
    enum_field(auth_type, ENDPOINT_AUTH_TYPES, "endpointAuth.type")
    creds = auth.get("credentials") or {}
    if not isinstance(creds, dict):
        raise bad_request("'endpointAuth.credentials' must be an object.")
    if auth_type == "BASIC" and not isinstance(creds.get("username"), str):
        raise bad_request("BASIC endpointAuth needs credentials.username.")
    return {
        "endpoint_url": url,
        "event_types": list(types),
        "status": status,
        "custom_headers": dict(headers),
        "auth_type": auth_type,
        "auth_username": creds.get("username"),
        "auth_password": creds.get("password"),
    }
