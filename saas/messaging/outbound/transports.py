"""How a message leaves: the sandbox (no network) or WhatsApp's Cloud API (saas.messaging.outbound.cloud_api)."""
from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    ok: bool
    wa_message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    # What the Cloud API answered, where it answered: the recipient's WhatsApp id and a
    # template's message_status on success; on a refusal, Graph's own error object
    # (code, error_subcode, error_data, fbtrace_id ...), its HTTP status and Retry-After.
    wa_id: str | None = None
    message_status: str | None = None
    graph_error: dict | None = None
    http_status: int | None = None
    retry_after: str | None = None
    # No answer in time: the message may or may not have gone out.
    timed_out: bool = False


def new_wamid() -> str:
    raw = b"HBgL" + secrets.token_bytes(24)
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


class SandboxTransport:
    """The free tier's try-before-you-connect mode.

    Nothing leaves the machine. Every send is accepted with a ``wamid.`` id and
    then walks sent -> delivered -> read through the same status code that
    WhatsApp's webhooks use. A few reserved recipients fail on purpose, so a
    client can see how each failure looks.
    """

    mode = "sandbox"
    # Nothing leaves the machine, so the send path may ask before it meters.
    side_effect_free = True

    def __init__(self, latency: float = 0.0, sleep=time.sleep):
        # SANDBOX_LATENCY_MS: answer as slowly as a real upstream does, to rehearse latency.
        self.latency = latency
        self.sleep = sleep

    # Recipient -> (WhatsApp error code, title): the failures a client can rehearse.
    FAILING_RECIPIENTS = {
        "15550000131": (131026, "Message undeliverable"),
        "15550000132": (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
        "15550000500": (131000, "Something went wrong"),
        # The user stopped marketing messages from the business: the contact is opted out of this number.
        "15550131050": (131050, "User has stopped receiving marketing messages from this business."),
    }

    def send(self, number, payload: dict) -> SendResult:
        if self.latency:
            self.sleep(self.latency)
        failure = self.FAILING_RECIPIENTS.get(payload["to"])
        if failure is not None:
            code, title = failure
            return SendResult(ok=False, error_code=code, error_title=title,
                              error_details=f"Sandbox recipient {payload['to']} always fails with {code}.")
        return SendResult(ok=True, wa_message_id=new_wamid())

    def follow_ups(self, tenant_id: int, wa_message_id: str) -> list[tuple[str, tuple]]:
        """Jobs to run after an accepted send's response: the sandbox's delivery receipts."""
        return [("saas.messaging.outbound.sandbox.walk_statuses", (tenant_id, wa_message_id))]


class Transports:
    """The transports the app was built with, chosen per phone number."""

    def __init__(self, sandbox: SandboxTransport, live=None):
        self.sandbox = sandbox
        self.live = live

    def for_number(self, number):
        if number.mode == "sandbox":
            return self.sandbox
        return self.live
