"""Notifications: tell a person when something needs them.

A failed or expired job of ours, items that failed in a job, a credential or a company's Xero
connection to re-authorise, a job at risk of expiry, a company blocked by a job owned elsewhere for
more than an hour, a missing worker or poll tick. Messages go by email (Django's email backend,
``EMAIL_URL``) and to a Slack-compatible incoming webhook (``NOTIFY_WEBHOOK_URL``), to the
integrator (``NOTIFY_EMAILS``) and to each company's bookkeepers (``Company.notify_emails``).

Modules: :mod:`.kinds` (what can be told), :mod:`.models` (the log and the throttle),
:mod:`.recipients` (address lists), :mod:`.render` (the words), :mod:`.channels` (email and
webhook), :mod:`.service` (request, dedupe, digest, delivery, retries), :mod:`.health` (the
``notify_health`` command's check), :mod:`.tasks` (worker entry points), :mod:`.admin` (the log).

The rest of the product calls one function at the few places where something happens:
:func:`exports.notifications.service.notification_request` (or its job-outcome form). It records
the notification in the caller's transaction (a savepoint) and queues its sending when that
transaction commits; it never raises into the caller, so a failure to notify never affects an
export.

This module imports nothing: ``exports.models`` imports :mod:`.models` from it.
"""
