"""Which companies, and which rows, a staff user may see. The one place it is decided.

Superusers and holders of ``exports.view_all_companies`` see every company. Anyone else sees the
companies of their own ``CompanyMembership`` and of their groups' memberships (none without one):
a *company-scoped* user. For them:

- a row is visible when it is tied to a visible company (``COMPANY_LOOKUPS``);
- a credential (and its webhook endpoint) is visible when it serves at least one company and every
  company it serves is visible: a credential shared with a company outside the scope stays out of
  it, since changing it or its webhooks would change that company too;
- rows tied to no company (an audit entry or a delivery that named none) are not visible;
- data that cannot be tied to a company at all (worker heartbeats, the django-q2 task tables and
  schedules, request budgets, users, groups, memberships) is out of reach: the user holds no
  permission on it (``exports.auth_backends.CompanyScopedModelBackend``).
"""

from __future__ import annotations

from functools import cache

from django.apps import apps
from django.db.models import Q, QuerySet

from exports.models import Company, CompanyMembership, Credential

VIEW_ALL_COMPANIES = "exports.view_all_companies"

# Model label -> the lookup from that model to its company.
COMPANY_LOOKUPS: dict[str, str] = {
    "exports.company": "pk",
    "exports.exportjob": "company",
    "exports.auditentry": "company",
    "exports.webhookdelivery": "company",
    "exports.journalentry": "company",
    "exports.exportitemrecord": "export_job__company",
    "exports.journalline": "entry__company",
    "exports.notification": "company",
    "exports.receipt": "company",
    # Xero (exports.xero.models)
    "exports.xeroconnection": "company",
    "exports.xeroaccount": "connection__company",
    "exports.xerotaxrate": "connection__company",
    "exports.xerotrackingoption": "connection__company",
    "exports.xerocontact": "connection__company",
    "exports.xerobooking": "connection__company",
    "exports.xeromapping": "company",
    "exports.manualbooking": "company",
}
# Model label -> the lookup from that model to its credential (see the module docstring).
CREDENTIAL_LOOKUPS: dict[str, str] = {
    "exports.credential": "pk",
    "exports.webhookendpoint": "credential",
    "exports.webhookrejectioncount": "endpoint__credential",  # global rows: users who see all
}
# Models with no company: only users who see all companies may have permissions on them.
UNSCOPED_EXPORTS_MODELS = frozenset(
    {
        "exports.workerheartbeat",
        "exports.requestbudget",
        "exports.companymembership",
        "exports.notificationthrottle",
    }
)


def user_sees_all_companies(*, user) -> bool:
    if user is None or not user.is_active:
        return False
    return user.is_superuser or user.has_perm(VIEW_ALL_COMPANIES)


def _visible_company_ids(*, user):
    """A subquery of the ids of the companies of ``user``'s memberships (own and groups')."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Company.objects.none().values("pk")
    through = CompanyMembership.companies.through
    return through.objects.filter(
        Q(companymembership__user=user) | Q(companymembership__group__user=user)
    ).values("company_id")


def company_list_for_user(*, user) -> QuerySet[Company]:
    if user_sees_all_companies(user=user):
        return Company.objects.all()
    return Company.objects.filter(pk__in=_visible_company_ids(user=user))


def credential_list_for_user(*, user) -> QuerySet[Credential]:
    return queryset_for_user(queryset=Credential.objects.all(), user=user)


def model_is_scopable(model) -> bool:
    """Whether rows of ``model`` can be filtered to a user's companies."""
    label = model._meta.label_lower
    return label in COMPANY_LOOKUPS or label in CREDENTIAL_LOOKUPS


def queryset_for_user(*, queryset: QuerySet, user) -> QuerySet:
    """``queryset`` filtered to the rows ``user`` may see (unchanged for users who see all).

    A model that cannot be tied to a company gives nothing to a company-scoped user.
    """
    if user_sees_all_companies(user=user):
        return queryset
    label = queryset.model._meta.label_lower
    company_ids = _visible_company_ids(user=user)
    if label in COMPANY_LOOKUPS:
        return queryset.filter(**{f"{COMPANY_LOOKUPS[label]}__in": company_ids})
    if label in CREDENTIAL_LOOKUPS:
        served = Company.objects.filter(pk__in=company_ids).values("credential_id")
        served_elsewhere = Company.objects.exclude(pk__in=company_ids).values("credential_id")
        credentials = Credential.objects.filter(pk__in=served).exclude(pk__in=served_elsewhere)
        return queryset.filter(**{f"{CREDENTIAL_LOOKUPS[label]}__in": credentials.values("pk")})
    return queryset.none()


@cache
def scopable_permissions() -> frozenset[str]:
    """``app_label.codename`` of every permission on a scopable model (default and custom)."""
    names = set()
    for label in (*COMPANY_LOOKUPS, *CREDENTIAL_LOOKUPS):
        opts = apps.get_model(label)._meta
        names.update(
            f"{opts.app_label}.{action}_{opts.model_name}" for action in opts.default_permissions
        )
        names.update(f"{opts.app_label}.{codename}" for codename, _ in opts.permissions)
    return frozenset(names)
