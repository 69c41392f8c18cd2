"""The one Stripe client: built by the factory from settings, pinned to one API version."""
from __future__ import annotations

import stripe
from flask import current_app

from saas.errors import BillingNotConfigured


def build(config) -> stripe.StripeClient | None:
    """A StripeClient for STRIPE_SECRET_KEY, or None when billing is not configured.

    STRIPE_API_BASE sends every call elsewhere (tests: a loopback fake). The SDK
    retries connection errors, 409, 429 and 5xx with backoff, adding an
    idempotency key to each POST so a retry never acts twice.
    """
    key = config.get("STRIPE_SECRET_KEY")
    if not key:
        return None
    base = config.get("STRIPE_API_BASE")
    addresses = {"api": base, "files": base, "connect": base, "meter_events": base} if base else None
    return stripe.StripeClient(
        key,
        stripe_version=config["STRIPE_API_VERSION"],
        base_addresses=addresses,
        max_network_retries=config["STRIPE_MAX_RETRIES"],
        http_client=stripe.RequestsClient(timeout=config["STRIPE_TIMEOUT_SECONDS"]),
    )


def configured() -> bool:
    return current_app.extensions.get("stripe") is not None


def client() -> stripe.StripeClient:
    """This app's client; raises BillingNotConfigured without STRIPE_SECRET_KEY."""
    found = current_app.extensions.get("stripe")
    if found is None:
        raise BillingNotConfigured("Online payment is not configured on this server.")
    return found
