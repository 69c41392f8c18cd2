"""Role checks for portal views: ``@allowed("billing")`` under ``@tenant_required`` answers 403 with a page
that says which role is needed, before the view reads its form or changes anything."""
from __future__ import annotations

from functools import wraps

from flask import render_template
from flask_login import current_user

from saas.tenants import roles


def forbidden(area: str):
    allowed_roles = [r for r in roles.PERMISSIONS[area]]
    return render_template("portal/forbidden.html", area=roles.AREA_NAMES[area], role=current_user.role,
                           allowed_roles=sorted(allowed_roles)), 403


def allowed(area: str):
    if area not in roles.PERMISSIONS:
        raise KeyError(area)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not roles.may(current_user.role, area):
                return forbidden(area)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def may(area: str) -> bool:
    """For templates: whether the logged-in user's role may use ``area``."""
    return bool(current_user.is_authenticated and current_user.tenant_id is not None
                and roles.may(current_user.role, area))
