"""The platform admin console (platform admins only)."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required
from sqlalchemy import select

from saas.billing.catalog import active_plans
from saas.extensions import db
from saas.tenants.models import Tenant

bp = Blueprint("admin", __name__, url_prefix="/admin")


def platform_admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_platform_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.get("/")
@platform_admin_required
def index():
    tenants = list(db.session.scalars(select(Tenant).order_by(Tenant.id.desc()).limit(200)))
    return render_template("admin/index.html", tenants=tenants, plans=active_plans())
