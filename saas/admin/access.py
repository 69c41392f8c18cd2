"""Who may see the admin console: platform admins; everyone else gets a 404, not a hint."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def platform_admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_platform_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapper
