"""POST /webhooks/stripe: Stripe's events, verified by signature (no session, so no CSRF)."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from saas.billing import stripe_client, webhooks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/stripe")
def stripe_event():
    """200 once the event is applied or was already; 4xx/5xx as the JSON error envelope (Stripe retries those)."""
    processed = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"),
                                 secret=current_app.config.get("STRIPE_WEBHOOK_SECRET"),
                                 client=stripe_client.client())
    g.tenant_id = processed.tenant_id
    return jsonify(received=True, event=processed.event_id, duplicate=processed.duplicate,
                   outcome=processed.outcome)
