"""The tenant's orders: the list, an order's timeline (its states and its messages with their delivery,
a WhatsApp cart's confirmation), the template each event sends (mapping, variables, preview, a flag on a
template Meta made marketing) and the shop connections with their URL and secret. Plan feature
``order_notifications``; roles: ``orders`` (the list and timelines) and ``order_settings`` (the rest)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import Length, Optional

from saas.billing import entitlements
from saas.broadcasts.templates import offered
from saas.errors import ApiError, InvalidRequest
from saas.extensions import db
from saas.ids import parse_id
from saas.messaging.models import PhoneNumber
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.messaging.outbound import send_service
from saas.orders import mapping, reading, services, shops
from saas.orders.models import PLATFORMS
from saas.orders.states import EVENTS, REQUESTED
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm
from saas.text import CleanText

bp = Blueprint("orders", __name__)

FIELD_NAMES = {"reference": "Order reference", "name": "Order name (#1001)", "state": "Order state",
               "customer_name": "Customer's name", "total": "Total", "currency": "Currency",
               "items": "Items", "tracking_number": "Tracking number", "tracking_url": "Tracking link",
               "carrier": "Carrier"}
SOURCES = [SelectChoice(name, label) for name, label in FIELD_NAMES.items()] + [
    SelectChoice("value", "The same text every time")]
EVENT_NAMES = {"created": "Order confirmed", "paid": "Paid", "packed": "Packed", "shipped": "Shipped",
               "out_for_delivery": "Out for delivery", "delivered": "Delivered", "cancelled": "Cancelled",
               "refunded": "Refunded"}


class ShopifySecretForm(FlaskForm):
    secret = StringField("Shopify's signing secret", validators=[Optional(), Length(min=16, max=200), CleanText()],
                         description="Settings → Notifications → Webhooks: “Your webhooks will be signed with …”")


def bindings_form(variables: list[str], saved: dict):
    """A source and a text (the fixed text, or the default of an empty field) per template variable."""
    class Form(FlaskForm):
        pass

    for index, _ in enumerate(variables):
        setattr(Form, f"v{index}_source", SelectField("Filled with", choices=SOURCES))
        setattr(Form, f"v{index}_text", StringField("Text, or what an empty field becomes",
                                                    validators=[Optional(), Length(max=1024), CleanText()]))
    data = {}
    for index, name in enumerate(variables):
        binding = saved.get(name) or {}
        data[f"v{index}_source"] = binding.get("field", "value" if "value" in binding else "name")
        data[f"v{index}_text"] = binding.get("value", binding.get("default", ""))
    return Form(data=data) if request.method == "GET" else Form()


def _gate(tenant):
    rights = entitlements.for_tenant(tenant)
    if not rights.may(services.FEATURE):
        return render_template("portal/orders.html", allowed=False, plan=rights.effective, orders=[]), 403
    return None


@bp.get("/orders")
@tenant_required
@allowed("orders")
def index(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    before = parse_id(request.args.get("before")) if request.args.get("before") else None
    rows = reading.list_orders(db.session, tenant, limit=51, before=before)
    return render_template("portal/orders.html", allowed=True, orders=rows[:50],
                           older=rows[49].id if len(rows) > 50 else None, names=EVENT_NAMES)


@bp.get("/orders/<order_id>")
@tenant_required
@allowed("orders")
def show(tenant, order_id):
    refused = _gate(tenant)
    if refused:
        return refused
    order = reading.get(db.session, tenant, parse_id(order_id) or 0)
    if order is None:
        abort(404)
    return render_template("portal/order.html", order=order, timeline=reading.timeline(db.session, tenant, order),
                           confirm=ConfirmForm(), requested=order.state == REQUESTED, names=EVENT_NAMES)


@bp.post("/orders/<order_id>/confirm")
@tenant_required
@allowed("orders")
def confirm(tenant, order_id):
    refused = _gate(tenant)
    if refused:
        return refused
    if not ConfirmForm().validate_on_submit():
        abort(400)
    order = reading.get(db.session, tenant, parse_id(order_id) or 0)
    if order is None:
        abort(404)
    applied = services.confirm(db.session, send_service(current_app), tenant, order.id)
    flash("The order is confirmed." if applied.applied else applied.why, "success" if applied.applied else "info")
    return redirect(url_for("portal.orders.show", order_id=order.id))


@bp.get("/order-notifications")
@tenant_required
@allowed("order_settings")
def mappings(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    rows = {row.event: row for row in mapping.mappings_for(db.session, tenant)}
    flags = {event: mapping.flagged(db.session, row) for event, row in rows.items()}
    return render_template("portal/order_notifications.html", events=EVENTS, names=EVENT_NAMES, rows=rows,
                           flags=flags)


def _choices(tenant):
    """(value, number, Sendable) for each approved utility template of the tenant's numbers."""
    return [(f"{n.id}|{t.name}|{t.language}", n, t) for n, t in offered(db.session, tenant, numbers_for(tenant))
            if t.category == mapping.UTILITY]


def _edit_page(tenant, event, picked=None, form=None, errors=None, status=200):
    choices = _choices(tenant)
    row = next((r for r in mapping.mappings_for(db.session, tenant) if r.event == event), None)
    if picked is None and row is not None:
        picked = f"{row.phone_number_id}|{row.template_name}|{row.template_language}"
    found = next(((value, n, t) for value, n, t in choices if value == picked), None)
    variables = found[2].variables if found else []
    if found is not None and form is None:
        form = bindings_form(variables, (row.variables or {}) if row and picked.endswith(
            f"|{row.template_name}|{row.template_language}") else {})
    preview = None
    if row is not None and found is not None and status == 200:
        try:
            preview = mapping.preview(db.session, tenant, event)
        except ApiError:
            preview = None
    return render_template("portal/order_notification.html", event=event, name=EVENT_NAMES[event], row=row,
                           choices=choices, found=found, form=form, variables=list(enumerate(variables)),
                           errors=errors or {}, preview=preview, flag=mapping.flagged(db.session, row) if row else None,
                           confirm=ConfirmForm()), status


@bp.get("/order-notifications/<event>")
@tenant_required
@allowed("order_settings")
def edit(tenant, event):
    refused = _gate(tenant)
    if refused:
        return refused
    if event not in EVENTS:
        abort(404)
    return _edit_page(tenant, event, picked=request.args.get("pick") or None)


@bp.post("/order-notifications/<event>")
@tenant_required
@allowed("order_settings")
def save(tenant, event):
    refused = _gate(tenant)
    if refused:
        return refused
    if event not in EVENTS:
        abort(404)
    picked = request.form.get("pick", "")
    found = next(((value, n, t) for value, n, t in _choices(tenant) if value == picked), None)
    if found is None:
        return _edit_page(tenant, event, errors={"pick": "Choose one of your approved utility templates."},
                          status=400)
    form = bindings_form(found[2].variables, {})
    if not form.validate_on_submit():
        return _edit_page(tenant, event, picked=picked, form=form, status=400)
    bindings = {}
    for index, name in enumerate(found[2].variables):
        source, text = getattr(form, f"v{index}_source").data, (getattr(form, f"v{index}_text").data or "").strip()
        bindings[name] = {"value": text} if source == "value" else {"field": source, **({"default": text} if text else {})}
    number = db.session.get(PhoneNumber, found[1].id)
    try:
        mapping.put(db.session, tenant, event, {"phone_number_id": number.phone_number_id, "variables": bindings,
                                                "template": {"name": found[2].name, "language": found[2].language}})
    except InvalidRequest as exc:
        db.session.rollback()
        details = exc.details or {}
        problems = details.get("variables") if isinstance(details.get("variables"), dict) else {}
        for index, name in enumerate(found[2].variables):
            if name in problems:
                getattr(form, f"v{index}_text").errors = [problems[name]]
        return _edit_page(tenant, event, picked=picked, form=form, status=400,
                          errors={"pick": exc.message} if not problems else None)
    flash(f"{EVENT_NAMES[event]} now sends {found[2].name}.", "success")
    return redirect(url_for("portal.orders.edit", event=event))


@bp.post("/order-notifications/<event>/delete")
@tenant_required
@allowed("order_settings")
def unmap(tenant, event):
    refused = _gate(tenant)
    if refused:
        return refused
    if event not in EVENTS or not ConfirmForm().validate_on_submit():
        abort(404 if event not in EVENTS else 400)
    try:
        mapping.delete(db.session, tenant, event)
    except ApiError:
        abort(404)
    flash(f"{EVENT_NAMES[event]} sends nothing now.", "success")
    return redirect(url_for("portal.orders.mappings"))


def _shop_page(tenant, form=None, status=200):
    rows = {row.platform: row for row in shops.connections_for(db.session, tenant)}
    secrets = {platform: shops.secret_of(row) for platform, row in rows.items()}
    return render_template("portal/shop_connection.html", rows=rows, secrets=secrets, platforms=PLATFORMS,
                           form=form or ShopifySecretForm(formdata=None), confirm=ConfirmForm()), status


@bp.get("/shop-connection")
@tenant_required
@allowed("order_settings")
def shop(tenant):
    return _gate(tenant) or _shop_page(tenant)


@bp.post("/shop-connection/<platform>")
@tenant_required
@allowed("order_settings")
def connect(tenant, platform):
    refused = _gate(tenant)
    if refused:
        return refused
    if platform not in PLATFORMS:
        abort(404)
    form = ShopifySecretForm()
    if not form.validate_on_submit():
        return _shop_page(tenant, form=form, status=400)
    shops.connect(db.session, tenant, platform, (form.secret.data or None) if platform == "shopify" else None)
    flash("The shop's webhook URL and secret are below.", "success")
    return redirect(url_for("portal.orders.shop"))
