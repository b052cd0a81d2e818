"""Secrets in the admin: shown to no one, at most as their last 4 characters.

A model attribute that decrypts (``exports.models.EncryptedSecret``) would print the plaintext
wherever the admin renders it by name: a view-only user's change page (every field is rendered
read-only from the object), a list column, an inline. Django looks such a name up on the model
admin before the model, so :class:`SecretHintsAdminMixin` gives every model admin and inline of a
model with secrets a display method of each secret's name that shows only the hint. Whatever
field list someone writes later, the admin cannot reach the plaintext by name.

The system check ``exports.E030`` refuses, at start, an admin (or inline) of a model with secrets
that lacks these displays, or defines a method of a secret's name not marked
:func:`secret_display`.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from exports import crypto
from exports.models import EncryptedSecret


def secret_attributes(model) -> dict[str, EncryptedSecret]:
    """The decrypting attributes of ``model`` by name (its own and inherited)."""
    found: dict[str, EncryptedSecret] = {}
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, EncryptedSecret):
                found[name] = value
    return found


def stored_hint(instance, name: str) -> str:
    """``Stored: ••••WXYZ`` (or why not): what any page may show of a stored secret."""
    if instance is None or instance.pk is None:
        return ""
    column = secret_attributes(type(instance))[name].column
    if not getattr(instance, column):
        return "Nothing stored yet."
    try:
        return f"Stored: {crypto.secret_hint(getattr(instance, name))}"
    except (crypto.SecretDecryptionError, ImproperlyConfigured) as exc:
        return f"Stored, but unreadable: {exc}"


def secret_display(description: str):
    """Mark a model admin method named after a secret as its safe display (a hint, never more)."""

    def mark(method):
        method = admin.display(description=description)(method)
        method.secret_display = True
        return method

    return mark


def _hint_display(name: str, description: str):
    def display(obj):
        return stored_hint(obj, name) or "-"

    display.short_description = description
    display.secret_display = True
    display.__name__ = name
    return display


class SecretHintsAdminMixin:
    """For model admins and inlines: each secret attribute of the model displays as its hint."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, secret in secret_attributes(self.model).items():
            own = getattr(type(self), name, None)
            if own is None:
                setattr(self, name, _hint_display(name, secret.verbose_name))
            elif not getattr(own, "secret_display", False):
                raise ImproperlyConfigured(
                    f"{type(self).__name__}.{name} shadows a secret: mark it @secret_display "
                    f"and show at most crypto.secret_hint of it."
                )


def _admin_instances(site):
    """``(label, model, admin or inline instance or the error making it)`` of every page part."""
    for model, model_admin in site._registry.items():
        yield type(model_admin).__name__, model, model_admin
        for inline_class in model_admin.inlines:
            try:
                inline = inline_class(model, site)
            except ImproperlyConfigured as exc:
                yield inline_class.__name__, inline_class.model, exc
            else:
                yield inline_class.__name__, inline.model, inline


def admin_secret_problems(site=None) -> list[str]:
    """Why a registered admin or inline could render a secret (empty when none can)."""
    problems = []
    for label, model, instance in _admin_instances(site or admin.site):
        secrets = secret_attributes(model)
        if not secrets:
            continue
        if isinstance(instance, Exception):
            problems.append(f"{label}: {instance}")
        elif not isinstance(instance, SecretHintsAdminMixin):
            problems.append(f"{label} shows {model._meta.label} without SecretHintsAdminMixin")
        else:
            problems.extend(
                f"{label}.{name} is not a secret_display"
                for name in secrets
                if not getattr(getattr(instance, name, None), "secret_display", False)
            )
    return problems


@register(Tags.admin)
def admin_shows_no_secret(app_configs, **kwargs):
    return [
        Error(
            f"{problem}: a page could show a secret.",
            hint="See exports/admin/secrets.py: secrets are shown as their last 4 at most.",
            id="exports.E030",
        )
        for problem in admin_secret_problems()
    ]
