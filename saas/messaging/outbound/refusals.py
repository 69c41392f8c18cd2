"""The refusals a send can meet that more than one path gives alike (a send, a batch): the plan's
features (withheld or not included), WhatsApp's refusal of a send."""
from __future__ import annotations

from saas.errors import UpstreamError, UpstreamTimeout
from saas.messaging.outbound.transports import SendResult
from saas.messaging.outbound.types import TYPES


def check_feature(rights, kind: str) -> None:
    """Whether the plan's rights allow sending a message of type ``kind``: FeatureNotInPlan, or
    PaymentRequired when the plan paid for allows it but its rights are withheld (the rights' own gate)."""
    rights.require(TYPES[kind].feature, f"'{kind}' messages", type=kind)


def refusal(result: SendResult, message_id: int) -> UpstreamError:
    """WhatsApp's refusal of a send (or no answer in time), for the tenant; ``message_id`` names the
    message written failed."""
    if result.timed_out:
        return UpstreamTimeout(result.error_title, details={"whatsapp_code": result.error_code,
                                                            "message_id": message_id})
    if result.graph_error is not None:
        return UpstreamError.from_graph(result.http_status, result.graph_error, retry_after=result.retry_after,
                                        details={"message_id": message_id})
    return UpstreamError(result.error_title or UpstreamError.message,
                         details={"whatsapp_code": result.error_code, "message_id": message_id},
                         graph_code=result.error_code)

