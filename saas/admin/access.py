"""Who may see the admin console: platform admins with two-factor login on; everyone else gets a 404, not a hint."""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app, flash, redirect, url_for
from flask_login import current_user, login_required


def platform_admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_platform_admin:
            abort(404)
        if current_app.config["ADMIN_REQUIRES_TWO_FACTOR"] and current_user.totp_enabled_at is None:
            flash("Platform admins log in with two-factor: turn it on to open the admin console.", "info")
            return redirect(url_for("portal.twofactor.index"))
        return view(*args, **kwargs)

    return wrapper
