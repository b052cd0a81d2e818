"""The template tags' one permission gate (a helper, not a tag library: no ``register``)."""

from __future__ import annotations


def user_with_perm(context, perm: str):
    """The request's user when they hold ``perm``, else None (no request, anonymous, lacking)."""
    user = getattr(context.get("request"), "user", None)
    if user is None or not user.has_perm(perm):
        return None
    return user
