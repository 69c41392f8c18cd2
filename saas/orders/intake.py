"""A shop's webhook taken in: its URL names the tenant's connection, the signature is checked before
anything is read or written, the plan must include order notifications, and each order event the payload
holds is recorded (saas.orders.services.record_event: once, its notification sent after)."""
from __future__ import annotations

from sqlalchemy import update

from saas.billing import entitlements
from saas.errors import TenantSuspended
from saas.orders import shops
from saas.orders.models import ShopConnection
from saas.orders.services import FEATURE, record_event
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow


def receive(session, service, token: str, headers, body: bytes) -> dict:
    """Take one webhook of the connection ``token`` names; what each of its events did.

    Raises NotFound (no such URL), SignatureMissing (401), SignatureInvalid (403), TenantSuspended,
    FeatureNotInPlan or PaymentRequired, InvalidRequest (not a JSON object): none of them writes anything."""
    connection = shops.by_token(session, token)
    platform, tenant_id, connection_id = connection.platform, connection.tenant_id, connection.id
    if shops.woo_ping(connection, body) and not headers.get(shops.SIGNATURE_HEADERS[platform]):
        session.rollback()
        return {"received": True, "platform": platform, "events": []}
    shops.verify(connection, body, headers)
    tenant = tenant_snapshot(tenant_id)
    rights = entitlements.for_tenant(tenant)
    if rights.suspended:
        raise TenantSuspended()
    rights.require(FEATURE, "order notifications")
    found = shops.events_of(connection, headers, body)
    session.rollback()
    outcomes = []
    for shop_event in found:
        applied = record_event(session, service, tenant, shop_event.reference, shop_event.event, shop_event.data,
                               source=platform, when=shop_event.when, rights=rights)
        outcomes.append({"reference": shop_event.reference, "event": shop_event.event, "outcome": applied.outcome,
                         "applied": applied.applied})
    try:
        session.execute(update(ShopConnection).where(ShopConnection.id == connection_id)
                        .values(last_received_at=utcnow()))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {"received": True, "platform": platform, "events": outcomes}
