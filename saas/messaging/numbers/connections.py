"""A tenant's own WhatsApp numbers: connecting, testing and disconnecting them, and re-keying their tokens.

A live number is checked against the Graph API with the tenant's token
before anything is written; its token is stored encrypted (see
saas.messaging.numbers.phone_numbers) and never shown again. Disconnecting keeps the row,
so the messages that name it keep their history and the same tenant can
connect it again; its token is deleted and sends from it are refused at
once in this process (a commit on PhoneNumber empties the snapshot caches)
and within ACCESS_CACHE_SECONDS in every other.

How many live numbers a tenant may connect is its plan's
``phone_numbers_allowed``, and one at most without the ``multi_number``
feature (billing.entitlements.live_numbers_allowed); the sandbox number
does not count, and plans that cost nothing allow none: the free tier is
the sandbox. The allowance is checked again in the transaction that adds
the number, under a lock on the tenant row, so racing connects cannot
both take the last place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from saas import cache, events
from saas.audit import services as audit
from saas.billing import entitlements
from saas.errors import NotFound
from saas.extensions import db
from saas.messaging import domain_events as happened
from saas.messaging.models import MODE_LIVE, PhoneNumber
from saas.messaging.numbers.info import LookupFailed, NumberInfo
from saas.crypto import TokenUnreadable, decrypt_token, encrypt_token, reencrypt_token
from saas.tenants.models import Tenant
from saas.tenants.scoping import get_owned
from saas.timeutil import utcnow

# Meta's ids are ASCII digits ("[0-9]", not "\d", which matches every script's digits).
META_ID = re.compile(r"[0-9]{1,64}")
META_ID_LENGTH = 64
# System-user tokens are a few hundred printable ASCII characters; they go into an HTTP header.
TOKEN = re.compile(r"[\x21-\x7e]+")
TOKEN_LENGTH = 1024

UNREADABLE_TOKEN = ("The stored access token can no longer be decrypted (the server's encryption keys changed). "
                    "Connect the number again with its token.")


class ConnectRefused(Exception):
    """A connection refused, with a sentence for the tenant; ``field`` names the input at fault (or None)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def id_problem(value: str | None, what: str) -> str | None:
    if not value:
        return f"Enter the {what}."
    if len(value) > META_ID_LENGTH:
        return f"The {what} is at most {META_ID_LENGTH} digits."
    if not META_ID.fullmatch(value):
        return f"The {what} is digits only (0-9), as Meta shows it."
    return None


def token_problem(value: str | None) -> str | None:
    if not value:
        return "Enter the access token."
    if len(value) > TOKEN_LENGTH:
        return f"An access token is at most {TOKEN_LENGTH} characters."
    if not TOKEN.fullmatch(value):
        return "An access token is letters, digits and punctuation only (printable ASCII, no spaces)."
    return None


def input_problems(phone_number_id, waba_id, token) -> dict[str, str]:
    """{field: problem} for inputs that cannot name a number or be a token; empty when all are well formed."""
    problems = {
        "phone_number_id": id_problem(phone_number_id, "phone number ID"),
        "waba_id": id_problem(waba_id, "WhatsApp Business Account ID"),
        "access_token": token_problem(token),
    }
    return {field: problem for field, problem in problems.items() if problem}


@dataclass(frozen=True)
class Allowance:
    """How many live numbers the tenant may have connected, how many it has, and why it may have none."""

    allowed: int
    used: int
    plan_name: str
    reason: str | None = None
    # Without multi_number: the plans on sale that allow several live numbers, as "Pro (up to 5)".
    several_with: tuple[str, ...] = ()

    @property
    def remaining(self) -> int:
        return max(self.allowed - self.used, 0)


def _live_count(tenant_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(PhoneNumber).where(
        PhoneNumber.tenant_id == tenant_id, PhoneNumber.mode == MODE_LIVE, PhoneNumber.disconnected_at.is_(None)))


def allowance(tenant) -> Allowance:
    """The tenant's live-number allowance under the rights it has now (see billing.entitlements)."""
    rights = entitlements.for_tenant(tenant)
    plan = rights.effective
    used = _live_count(tenant.id)
    if rights.suspended:
        return Allowance(0, used, plan.name, "This account is suspended; numbers cannot be connected.")
    if plan.is_free:
        return Allowance(0, used, plan.name, f"Live numbers need a paid plan; the {plan.name} plan sends from "
                                             "the sandbox number only.")
    several_with = () if rights.may(entitlements.MULTI_NUMBER) else tuple(
        f"{other.name} (up to {entitlements.live_numbers_allowed(other)})"
        for other in entitlements.plans_with(entitlements.MULTI_NUMBER))
    return Allowance(rights.live_numbers_allowed, used, plan.name, several_with=several_with)


def _refuse_over_allowance(tenant) -> None:
    room = allowance(tenant)
    if room.reason:
        raise ConnectRefused(None, room.reason)
    if room.used >= room.allowed:
        plural = "" if room.allowed == 1 else "s"
        full = (f"Your {room.plan_name} plan allows {room.allowed} live number{plural} and {room.used} "
                f"{'is' if room.used == 1 else 'are'} connected; ")
        if room.several_with:
            raise ConnectRefused(None, full + "several live numbers need a plan with them: "
                                 f"{', '.join(room.several_with)}. Upgrade, or disconnect one to connect another.")
        raise ConnectRefused(None, full + "disconnect one or upgrade to connect another.")


@dataclass(frozen=True)
class Connected:
    number: PhoneNumber
    action: str            # number.connected, number.reconnected or number.token_replaced
    info: NumberInfo


def _apply_info(number: PhoneNumber, info: NumberInfo, now) -> None:
    if info.display_phone_number:
        number.display_number = info.display_phone_number
    if info.verified_name:
        number.verified_name = info.verified_name
    number.quality_rating = info.quality_rating
    number.messaging_limit_tier = info.messaging_limit_tier
    number.last_checked_at = now
    number.last_check_error = None


def _info_details(info: NumberInfo) -> dict:
    return {"display_number": info.display_phone_number, "verified_name": info.verified_name,
            "quality_rating": info.quality_rating, "messaging_limit_tier": info.messaging_limit_tier}


def connect_number(tenant: Tenant, actor, *, phone_number_id: str, waba_id: str, token: str,
                   lookup) -> Connected:
    """Connect the live number ``phone_number_id`` to ``tenant`` with the tenant's system-user token.

    Nothing is written unless the inputs are well formed, the plan has room
    (a number already connected to this tenant takes none: connecting it again
    replaces its token), and the Graph API (``lookup``, a NumberInfoClient)
    shows the number to this token. A number that belongs to another tenant,
    connected or not, is refused. One transaction, audited; no database
    connection is held while Meta answers. Raises ConnectRefused.
    """
    problems = input_problems(phone_number_id, waba_id, token)
    if problems:
        field = next(iter(problems))
        raise ConnectRefused(field, problems[field])
    own = db.session.scalar(select(PhoneNumber).where(
        PhoneNumber.tenant_id == tenant.id, PhoneNumber.phone_number_id == phone_number_id))
    if own is not None and not own.is_live:
        raise ConnectRefused("phone_number_id", "That is your sandbox number; enter the ID of a live number.")
    if own is None or not own.connected:
        _refuse_over_allowance(tenant)
    tenant_id = tenant.id
    db.session.rollback()

    try:
        info = lookup.fetch(phone_number_id, token)
    except LookupFailed as exc:
        field = "access_token" if exc.about_token else "phone_number_id" if exc.about_number else None
        raise ConnectRefused(field, exc.message) from None
    return _store_connection(tenant, actor, phone_number_id, waba_id, token, info)


def _store_connection(tenant: Tenant, actor, phone_number_id: str, waba_id: str, token: str,
                      info: NumberInfo) -> Connected:
    """Write the connection Meta vouched for, checked again under the tenant's lock; one transaction, audited."""
    tenant_id, now = tenant.id, utcnow()
    try:
        # Two connects of one tenant queue here, so neither overshoots the plan. NO KEY UPDATE
        # leaves sends (whose inserts take KEY SHARE on the tenant) unblocked.
        db.session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))
        number = db.session.scalar(select(PhoneNumber).where(PhoneNumber.phone_number_id == phone_number_id))
        if number is not None and number.tenant_id != tenant_id:
            raise ConnectRefused("phone_number_id", "This number is registered to another account. If it is "
                                                    "yours now, ask that account to release it, or contact support.")
        if number is not None and not number.is_live:
            raise ConnectRefused("phone_number_id", "That is your sandbox number; enter the ID of a live number.")
        if number is None or not number.connected:
            _refuse_over_allowance(tenant)
        if number is None:
            action = "number.connected"
            number = PhoneNumber(tenant_id=tenant_id, phone_number_id=phone_number_id, mode=MODE_LIVE,
                                 display_number=info.display_phone_number or phone_number_id[:32])
            db.session.add(number)
        else:
            action = "number.reconnected" if not number.connected else "number.token_replaced"
        number.waba_id = waba_id
        number.access_token_encrypted = encrypt_token(token)
        number.token_last4 = token[-4:]
        number.disconnected_at = None
        _apply_info(number, info, now)
        db.session.flush()
        verb = {"number.connected": "Connected", "number.reconnected": "Reconnected",
                "number.token_replaced": "Replaced the token of"}[action]
        audit.record(actor, action, f"{verb} live number {number.display_number} ({phone_number_id})",
                     tenant_id=tenant_id, phone_number_id=phone_number_id, waba_id=waba_id,
                     token_last4=number.token_last4, **_info_details(info))
        db.session.commit()
    except IntegrityError:
        # Another tenant connected the same number between our read and our insert.
        db.session.rollback()
        raise ConnectRefused("phone_number_id", "This number is registered to another account.") from None
    except BaseException:
        db.session.rollback()
        raise
    return Connected(number, action, info)


def connected_live_number(tenant, number_id) -> PhoneNumber:
    """The tenant's connected live number with our row id ``number_id``; NotFound for anything else."""
    number = get_owned(PhoneNumber, number_id, tenant, what="phone number")
    if not number.is_live or not number.connected:
        raise NotFound("No such phone number.")
    return number


@dataclass(frozen=True)
class CheckOutcome:
    number: PhoneNumber
    info: NumberInfo | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_number(tenant, actor, number_id, *, lookup) -> CheckOutcome:
    """Ask the Graph API about a connected live number with its stored token, and keep what it says.

    Success stores the display number, verified name, quality rating and
    messaging limit tier; failure stores the reason. Either is audited and
    committed. Raises NotFound for a number that is not the tenant's live,
    connected one; a Graph failure is the outcome's ``error``, never raised.
    """
    number = connected_live_number(tenant, number_id)
    row_id, phone_number_id = number.id, number.phone_number_id
    info, error = None, None
    try:
        token = decrypt_token(number.access_token_encrypted) if number.access_token_encrypted else None
    except TokenUnreadable:
        token = None
    if token is None:
        error = UNREADABLE_TOKEN
    db.session.rollback()
    if token is not None:
        try:
            info = lookup.fetch(phone_number_id, token)
        except LookupFailed as exc:
            error = exc.message
    try:
        number = connected_live_number(tenant, row_id)
        now = utcnow()
        if info is not None:
            before = happened.quality_of(number)
            _apply_info(number, info, now)
            events.publish(db.session.connection(), happened.number_quality_changed(number, before, source="check"))
            audit.record(actor, "number.tested",
                         f"Tested live number {number.display_number}: quality {info.quality_rating}, "
                         f"tier {info.messaging_limit_tier}", tenant_id=number.tenant_id,
                         phone_number_id=phone_number_id, ok=True, **_info_details(info))
        else:
            number.last_checked_at = now
            number.last_check_error = error[:300]
            audit.record(actor, "number.tested", f"Test of live number {number.display_number} failed: {error}",
                         tenant_id=number.tenant_id, phone_number_id=phone_number_id, ok=False, error=error)
        events.commit(db.session)
    except BaseException:
        db.session.rollback()
        raise
    return CheckOutcome(number, info, error)


def disconnect_number(tenant, actor, number_id) -> PhoneNumber:
    """Stop a live number: its token is deleted and sends from it are refused; its messages stay.

    Committed and audited. The same tenant may connect it again later.
    Raises NotFound for a number that is not the tenant's live, connected one.
    """
    try:
        number = connected_live_number(tenant, number_id)
        number.disconnected_at = utcnow()
        number.access_token_encrypted = None
        number.token_last4 = None
        audit.record(actor, "number.disconnected",
                     f"Disconnected live number {number.display_number} ({number.phone_number_id})",
                     tenant_id=number.tenant_id, phone_number_id=number.phone_number_id, waba_id=number.waba_id)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return number


@dataclass(frozen=True)
class Rotation:
    rotated: int
    # (tenant id, phone_number_id) of each token no configured key decrypts.
    unreadable: list[tuple[int, str]]


def rotate_tokens(actor="cli", *, batch: int = 200) -> Rotation:
    """Re-encrypt every stored access token with TOKEN_ENCRYPTION_KEY's first key.

    A token none of the keys decrypts is left as it is and reported. A
    token changed meanwhile (the tenant reconnected) is left to its new
    value. Commits per batch, one audit entry per token re-encrypted; safe to
    run again.
    """
    rotated, unreadable, after = 0, [], 0
    while True:
        rows = db.session.execute(
            select(PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.phone_number_id,
                   PhoneNumber.display_number, PhoneNumber.access_token_encrypted)
            .where(PhoneNumber.access_token_encrypted.is_not(None), PhoneNumber.id > after)
            .order_by(PhoneNumber.id).limit(batch)).all()
        if not rows:
            break
        try:
            for row in rows:
                try:
                    fresh = reencrypt_token(row.access_token_encrypted)
                except TokenUnreadable:
                    unreadable.append((row.tenant_id, row.phone_number_id))
                    continue
                changed = db.session.execute(
                    update(PhoneNumber)
                    .where(PhoneNumber.id == row.id,
                           PhoneNumber.access_token_encrypted == row.access_token_encrypted)
                    .values(access_token_encrypted=fresh)
                    .execution_options(synchronize_session=False)).rowcount
                if changed:
                    rotated += 1
                    audit.record(actor, "number.token_rotated",
                                 f"Re-encrypted the access token of {row.display_number} with the current key",
                                 tenant_id=row.tenant_id, phone_number_id=row.phone_number_id)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        after = rows[-1].id
    # Snapshots hold ciphertexts; a bulk UPDATE does not pass through the ORM's change tracking.
    cache.clear_all()
    return Rotation(rotated, unreadable)
