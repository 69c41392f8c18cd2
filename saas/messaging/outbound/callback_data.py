"""Our message id in a live send's ``biz_opaque_callback_data``, beside the tenant's own value.

WhatsApp does not read this field; it returns it in the statuses of the
message. A send whose answer we never saw (the worker died while WhatsApp
took it) is known to us only by it: its first status names our message id,
and the send is settled as sent and billed (saas.messaging.outbound.settle). The
tenant sees exactly its own value wherever a status is passed on to it
(saas.messaging.tenant_webhooks.forwarding), or none when it set none.

What WhatsApp gets, within its 512 characters:
  ``relay:<id>``          the tenant set no value;
  ``relay:<id>:<value>``  the tenant's value travels after ours;
  ``relay:<id>;``         the tenant's value is too long to travel beside ours: it is kept on the
                          message (``Message.callback_data``) and put back from there.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from saas.ids import parse_id

FIELD = "biz_opaque_callback_data"
PREFIX = "relay:"
LIMIT = 512
# Room for the longest mark (the prefix, a 64-bit id, a separator): a longer value is kept with us.
FITS = LIMIT - (len(PREFIX) + 19 + 1)
_MARK = re.compile(r"relay:([0-9]{1,19})(?:(:)(.*)|(;))?\Z", re.DOTALL)


@dataclass(frozen=True)
class Mark:
    message_id: int
    tenant_value: str | None  # travelled with ours (None: none, or kept with us)
    kept: bool                # the tenant's value is on the message row


def kept_with_us(tenant_value) -> str | None:
    """The tenant's value when it must be kept on the message row (too long to travel with ours)."""
    return tenant_value if isinstance(tenant_value, str) and len(tenant_value) > FITS else None


def for_whatsapp(message_id: int, tenant_value) -> str:
    """The value WhatsApp is sent for message ``message_id`` whose tenant set ``tenant_value`` (or None)."""
    if not isinstance(tenant_value, str):
        return f"{PREFIX}{message_id}"
    if kept_with_us(tenant_value) is not None:
        return f"{PREFIX}{message_id};"
    return f"{PREFIX}{message_id}:{tenant_value}"


def read(value) -> Mark | None:
    """Our mark in a value WhatsApp returned; None when it is not ours (a send made elsewhere)."""
    if not isinstance(value, str):
        return None
    match = _MARK.match(value)
    message_id = parse_id(match.group(1)) if match is not None else None
    if message_id is None:
        return None
    return Mark(message_id, match.group(3) if match.group(2) else None, bool(match.group(4)))


def message_id(value) -> int | None:
    """Our message id named by a status's biz_opaque_callback_data, if it names one."""
    mark = read(value)
    return mark.message_id if mark is not None else None


def as_the_tenant_sent_it(item: dict, kept: dict[int, str]) -> dict:
    """A status object with the tenant's own biz_opaque_callback_data in place of ours.

    ``kept`` maps message ids to values kept on the message rows. A status
    whose value is not ours is returned as it is.
    """
    mark = read(item.get(FIELD))
    if mark is None:
        return item
    item = dict(item)
    value = kept.get(mark.message_id) if mark.kept else mark.tenant_value
    if value is None:
        del item[FIELD]
    else:
        item[FIELD] = value
    return item
