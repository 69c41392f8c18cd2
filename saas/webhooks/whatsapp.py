"""GET|POST /webhooks/whatsapp: WhatsApp's subscription handshake and its notifications.

No session and no CSRF: every POST is verified by its X-Hub-Signature-256.
The POST stores the notification and answers 200 at once; applying it
happens after the response (saas.messaging.inbound.notifications).
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from saas.messaging.inbound import intake

bp = Blueprint("whatsapp_webhooks", __name__, url_prefix="/webhooks")


@bp.get("/whatsapp")
def verify():
    challenge = intake.verify_subscription(
        request.args.get("hub.mode"), request.args.get("hub.verify_token"), request.args.get("hub.challenge"),
        current_app.config.get("WHATSAPP_VERIFY_TOKEN"))
    return Response(challenge, status=200, mimetype="text/plain")


@bp.post("/whatsapp")
def notification():
    # WhatsApp's notifications can be larger than the API's bodies.
    request.max_content_length = current_app.config["WHATSAPP_WEBHOOK_MAX_BYTES"]
    intake.receive(request.get_data(cache=False), request.headers.get("X-Hub-Signature-256"),
                          secret=current_app.config.get("WHATSAPP_APP_SECRET"))
    return jsonify(received=True)
