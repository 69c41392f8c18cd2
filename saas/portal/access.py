"""Who may open a portal page: ``@tenant_required`` (a user of a tenant that is not suspended; the tenant is
passed to the view), and role checks: ``@allowed("billing")`` under ``@tenant_required`` answers 403 with a
page that says which role is needed, before the view reads its form or changes anything."""
from __future__ import annotations

from functools import wraps

from flask import g, redirect, render_template, url_for
from flask_login import current_user, login_required

from saas.tenants import roles
from saas.tenants.models import TENANT_SUSPENDED


def tenant_required(view):
    """Logged in as a user of a tenant; the tenant is passed to the view."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if current_user.tenant is None:
            if not current_user.is_platform_admin:  # removed from their team, or left it
                return render_template("portal/no_team.html"), 403
            return redirect(url_for("admin.index"))
        g.tenant_id = current_user.tenant_id
        if current_user.tenant.status == TENANT_SUSPENDED:
            # A suspended account changes nothing: every page of it shows why, and every form is refused.
            return render_template("portal/suspended.html"), 403
        return view(current_user.tenant, *args, **kwargs)

    return wrapper


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
