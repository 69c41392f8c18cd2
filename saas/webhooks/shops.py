"""POST /webhooks/shops/<token>: a tenant's shop (Shopify, WooCommerce) telling its orders' events,
verified by the shop's signature (no session, so no CSRF). The token names the tenant's connection."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from saas.extensions import db
from saas.messaging.outbound import send_service
from saas.orders import intake

bp = Blueprint("shop_webhooks", __name__, url_prefix="/webhooks/shops")


@bp.post("/<token>")
def receive(token):
    """200 with what each order event did (an event that moved nothing says so); 401/403 for a missing or
    wrong signature, 404 for an unknown URL, as the JSON error envelope."""
    outcome = intake.receive(db.session, send_service(current_app), token, request.headers,
                             request.get_data(cache=False))
    return jsonify(outcome)
