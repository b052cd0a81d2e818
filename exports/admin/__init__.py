"""Django admin: thin. Forms validate, actions call services; nothing here builds HTTP.

Secrets are write-only: a page shows at most their last 4 characters, whoever looks
(``exports.admin.secrets``), and saving a form with a secret field left blank keeps the stored
value. Every admin shows a company-scoped user only their companies' rows
(``exports.admin.scoping``).

Where things are: ``forms`` (the company and credential forms), ``actions`` (Check now),
``filters``, ``mixins``/``scoping``/``secrets`` (shared by every admin), ``timestamps`` (how
the admin shows times) and one module per model group: ``companies``, ``credentials``, ``jobs``
(jobs, their items and audit, the audit table, worker heartbeats), ``deliveries``, ``journal``,
``memberships``, ``receipts`` (the archive, downloads, the audit pack) and ``schedules``
(django-q2's admins, restricted). Importing this package
registers them all; the notification log's admin stays in ``exports.notifications``.
"""

from django.contrib import admin

# The audit table and the journal are wide: their pages get the whole width (the index and the
# breadcrumbs still lead everywhere the sidebar did).
admin.site.enable_nav_sidebar = False

from exports.admin import (  # noqa: E402,F401  (registration happens on import)
    companies,
    credentials,
    deliveries,
    jobs,
    journal,
    memberships,
    receipts,
    schedules,
    xero,
)
from exports.notifications import admin as _notifications_admin  # noqa: E402,F401
