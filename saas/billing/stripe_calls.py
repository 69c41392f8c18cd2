"""The two calls the catalogue sync makes of every kind of Stripe object: a retrieve that answers None for
an object Stripe does not have, and a create under an idempotency key that survives a replayed failure."""
from __future__ import annotations

import stripe


def retrieve(service, object_id: str | None) -> dict | None:
    """The object, or None when there is no id or Stripe has no such object."""
    if not object_id:
        return None
    try:
        return service.retrieve(object_id).to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def create(service, params: dict, idempotency_key: str) -> dict:
    """The object created with ``params`` under ``idempotency_key`` (a replay of the same create answers it)."""
    try:
        return service.create(params=params, options={"idempotency_key": idempotency_key}).to_dict()
    except stripe.APIError as exc:
        # Stripe keeps a 500 under its key for a day and replays it. The lookups before
        # this create found nothing, so the failed request made nothing: a new key is safe.
        headers = exc.headers or {}
        if (exc.http_status or 0) < 500 or headers.get("idempotent-replayed") != "true":
            raise
        retry_key = f"{idempotency_key}-after-{headers.get('original-request') or 'error'}"
        return service.create(params=params, options={"idempotency_key": retry_key}).to_dict()
