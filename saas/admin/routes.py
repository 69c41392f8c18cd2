"""The platform admin console (platform admins only)."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from saas.admin.access import platform_admin_required
from saas.billing.catalog import active_plans
from saas.extensions import db
from saas.tenants.models import Tenant

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@platform_admin_required
def index():
    tenants = list(db.session.scalars(select(Tenant).order_by(Tenant.id.desc()).limit(200)))
    return render_template("admin/index.html", tenants=tenants, plans=active_plans())
