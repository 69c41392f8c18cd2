"""The volume tier of a tenant's WhatsApp Business Account, per market, category and month, as Meta's
``account_update`` webhook reports it (event ``VOLUME_BASED_PRICING_TIER_UPDATE``, its
``volume_tier_info``): estimates of messages sent from then on in that month use the tier's rate."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from saas.costs.markets import market_key
from saas.costs.models import CATEGORY_LENGTH, MARKET_LENGTH, PricingTier
from saas.database import insert_for
from saas.text import problem
from saas.timeutil import utcnow

TIER_UPDATE = "VOLUME_BASED_PRICING_TIER_UPDATE"
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
TIER = re.compile(r"\d{1,12}:\d{0,12}")


def tier_of(tenant_id: int, waba_id, value) -> dict | None:
    """The PricingTier row an account_update ``value`` gives, or None when it reports no (usable) tier."""
    if not isinstance(value, dict) or value.get("event") != TIER_UPDATE or not isinstance(waba_id, str):
        return None
    info = value.get("volume_tier_info")
    if not isinstance(info, dict):
        return None
    region, category, tier, month = (info.get(key) for key in ("region", "pricing_category", "tier", "effective_month"))
    if not all(isinstance(v, str) and not problem(v) for v in (region, category, tier, month, waba_id)):
        return None
    key = market_key(region)
    if not key or len(key) > MARKET_LENGTH or len(category) > CATEGORY_LENGTH or len(waba_id) > 64:
        return None
    if not TIER.fullmatch(tier) or not MONTH.fullmatch(month):
        return None
    at = info.get("tier_update_time")
    try:
        since = (datetime.fromtimestamp(int(at), timezone.utc).replace(tzinfo=None)
                 if isinstance(at, (int, str)) and not isinstance(at, bool) else None)
    except (ValueError, OverflowError, OSError):
        since = None
    if since is None:
        since = datetime.strptime(month, "%Y-%m")
    return {"tenant_id": tenant_id, "waba_id": waba_id, "market_key": key, "category": category.lower(),
            "since": since, "effective_month": month, "tier": tier, "received_at": utcnow()}


def record_tiers(conn, rows: list[dict]) -> int:
    """Store tier rows (see ``tier_of``); a row reported again keeps the tier last reported. How many."""
    if not rows:
        return 0
    statement = insert_for(conn, PricingTier)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "waba_id", "market_key", "category", "since"],
        set_={"tier": statement.excluded.tier, "effective_month": statement.excluded.effective_month,
              "received_at": statement.excluded.received_at})
    conn.execute(statement, rows)
    return len(rows)
