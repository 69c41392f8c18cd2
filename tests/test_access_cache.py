"""Keys, plans, tenants and numbers are read from a per-process cache, within a known bound.

A change committed in this process takes effect at its next request; a
change made elsewhere (another web process) within ACCESS_CACHE_SECONDS.
Changes "made elsewhere" are written here with plain SQL, which this
process's cache does not see.
"""
from __future__ import annotations

import time

from sqlalchemy import text

from saas import cache
from saas.extensions import db
from tests.factories import sender


def elsewhere(app, sql, **params):
    """A write by another process: committed, and unseen by this process's cache."""
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()
        db.session.remove()


def after_the_bound(bound: float):
    """Wait out the access caches' bound (the short_bound fixture's)."""
    time.sleep(bound + 0.1)


def test_a_key_revoked_here_stops_at_once(app, client):
    from saas.tenants import services as accounts

    acme = sender(client)
    assert acme.get("/api/v1/usage").status_code == 200
    with app.app_context():
        tenant = db.session.get(accounts.Tenant, acme.tenant_id)
        accounts.revoke_api_key(tenant, accounts.list_api_keys(tenant)[0].id)
        db.session.remove()
    assert acme.get("/api/v1/usage").status_code == 401


def test_a_key_revoked_elsewhere_stops_within_the_bound(app, client, short_bound):
    acme = sender(client)
    assert acme.get("/api/v1/usage").status_code == 200
    elsewhere(app, "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE tenant_id = :t", t=acme.tenant_id)
    after_the_bound(short_bound)
    assert acme.get("/api/v1/usage").status_code == 401
    assert acme.send().status_code == 401


def test_a_tenant_suspended_elsewhere_is_refused_within_the_bound(app, client, short_bound):
    acme = sender(client)
    assert acme.send().status_code == 200
    elsewhere(app, "UPDATE tenants SET status = 'suspended' WHERE id = :t", t=acme.tenant_id)
    after_the_bound(short_bound)
    refused = acme.send()
    assert refused.status_code == 403
    assert refused.get_json()["error"]["reason"] == "tenant_suspended"


def test_a_plan_changed_elsewhere_applies_within_the_bound(app, client, short_bound):
    acme = sender(client)
    image = {"messaging_product": "whatsapp", "to": "15551230001", "type": "image",
             "image": {"link": "https://example.com/a.png"}}
    assert acme.send(payload=image).status_code == 403
    elsewhere(app, "UPDATE subscriptions SET plan_id = (SELECT id FROM plans WHERE code = 'pro') "
                   "WHERE tenant_id = :t", t=acme.tenant_id)
    after_the_bound(short_bound)
    assert acme.send(payload=image).status_code == 200


def test_a_plan_edited_here_applies_at_the_next_request(app, client):
    from saas.billing.catalog import plan_by_code

    acme = sender(client)
    assert acme.send().get_json()
    with app.app_context():
        plan_by_code("free").features = []
        db.session.commit()
        db.session.remove()
    assert acme.send().status_code == 403


def test_snapshots_expire_after_their_ttl():
    now = [100.0]
    snapshots = cache.SnapshotCache(5.0, clock=lambda: now[0])
    loads = []
    assert snapshots.get("k", lambda: loads.append(1) or "v1") == "v1"
    now[0] += 4.9
    assert snapshots.get("k", lambda: "v2") == "v1"
    now[0] += 0.2
    assert snapshots.get("k", lambda: "v2") == "v2"
    assert snapshots.get("missing", lambda: None) is None
    assert snapshots.get("missing", lambda: "found") == "found"  # absence is never cached
