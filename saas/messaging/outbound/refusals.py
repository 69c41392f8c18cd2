"""The refusals a send can meet that more than one path gives alike (a send, a batch): the plan's
features, payment withheld, WhatsApp's refusal of a send."""
from __future__ import annotations

from saas.errors import ApiError, FeatureNotInPlan, PaymentRequired, QuotaExceeded, UpstreamError, UpstreamTimeout
from saas.messaging.outbound.transports import SendResult
from saas.messaging.outbound.types import TYPES


def payment_required(rights, what: str, **details) -> PaymentRequired:
    """The refusal when the plan paid for would allow ``what`` but its rights are withheld for non-payment."""
    plan = rights.plan
    return PaymentRequired(
        f"Your {plan.name} subscription is {rights.status.replace('_', ' ')}, so free plan limits apply: "
        f"{what} needs the {plan.name} plan. Update your payment method or resubscribe to restore it.",
        details={"status": rights.status, "plan": plan.code, "effective_plan": rights.effective.code, **details},
        upgrade=True)


def check_feature(rights, kind: str) -> None:
    """Whether the plan's rights allow sending a message of type ``kind``: FeatureNotInPlan, or
    PaymentRequired when the plan paid for allows it but its rights are withheld for non-payment."""
    feature = TYPES[kind].feature
    if rights.may(feature):
        return
    if rights.paid_plan_allows(feature):
        raise payment_required(rights, f"'{kind}' messages", feature=feature, type=kind)
    raise FeatureNotInPlan(
        f"Your {rights.effective.name} plan does not include '{kind}' messages.",
        details={"feature": feature, "type": kind, "plan": rights.effective.code}, upgrade=True)


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


def over_quota(rights, exc: QuotaExceeded) -> ApiError:
    """The refusal of a conversation past the quota: QuotaExceeded, or PaymentRequired when the plan
    paid for would still open one (its rights withheld for non-payment)."""
    if rights.paid_plan_allows_conversation(exc.details["used"]):
        return payment_required(rights, "a new conversation past the free plan's quota",
                                quota=exc.details["quota"], used=exc.details["used"])
    return exc
