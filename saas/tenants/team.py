"""A tenant's team: invitations by email, joining, roles, removing and leaving.

Every change is recorded in the tenant's audit log in the same transaction.
A tenant always keeps at least one owner: every change to who is an owner
first locks the tenant's row (SELECT ... FOR UPDATE), so two admins acting at
once are serialised and cannot take away the last two owners between them.
A user belongs to at most one tenant; removing or leaving detaches the user
(``tenant_id`` None), who may then accept an invitation elsewhere.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from saas.audit import services as audit
from saas.extensions import db
from saas.tenants.models import ROLE_OWNER, ROLES, Invite, Tenant, User
from saas.tenants.services import MIN_PASSWORD, AccountError, normalise_email
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

INVITE_LIFETIME = timedelta(days=7)


class TeamError(ValueError):
    """A team change was refused; nothing was changed. ``field`` names the form field, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InviteUnusable(TeamError):
    """The link is unknown (tampered), expired, revoked or already used."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- delivering the link ---------------------------------------------------------------------

# The links handed over, newest last (bounded): what a mailer will send.
delivered: list[tuple[str, str]] = []


def deliver_invite(invite: Invite, link: str) -> None:
    """Email the invitation link to the invitee (it is also shown to the inviter, to pass on by hand)."""
    from saas.mail import send_mail

    tenant_name = invite.tenant.name if getattr(invite, "tenant", None) is not None else "a team"
    send_mail(invite.email, f"You are invited to {tenant_name} on Relay",
              f"You are invited to join {tenant_name} on Relay as {invite.role}.\n\n"
              f"Accept the invitation: {link}\n\nThe link works once, for this address, for 7 days.")
    delivered.append((invite.email, link))
    del delivered[:-100]
    log.info("invite.delivered", extra={"invite_id": invite.id, "tenant_id": invite.tenant_id})


# -- inviting --------------------------------------------------------------------------------

def _check_role(role: str) -> str:
    if role not in ROLES:
        raise TeamError("Choose one of the roles offered.", "role")
    return role


def _check_grant(actor: User, *roles: str) -> None:
    if ROLE_OWNER in roles and actor.role != ROLE_OWNER:
        raise TeamError("Only an owner may grant or take away the owner role.", "role")


@dataclass
class NewInvite:
    invite: Invite
    token: str  # shown once, in the link


def _check_places(tenant: Tenant, role: str, limits: dict[str, int | None] | None, *, email: str | None = None,
                  member_id: int | None = None) -> None:
    """Refuse ``role`` when ``limits`` caps it (role -> most members plus pending invitations; None: no cap)
    and the tenant has no place left. Call it with the tenant's row locked, so two invitations at once
    cannot both take the last place. ``email``: an invitation about to be replaced; ``member_id``: a member
    changing role (neither counts against the place they would take)."""
    if not limits or role not in limits or limits[role] is None:
        return
    now = utcnow()
    members_count = db.session.scalar(select(func.count(User.id)).where(
        User.tenant_id == tenant.id, User.role == role, *([User.id != member_id] if member_id else [])))
    invites_count = db.session.scalar(select(func.count(Invite.id)).where(
        Invite.tenant_id == tenant.id, Invite.role == role, Invite.accepted_at.is_(None),
        Invite.revoked_at.is_(None), Invite.expires_at > now, *([Invite.email != email] if email else [])))
    if members_count + invites_count >= limits[role]:
        db.session.rollback()
        raise TeamError(f"Your plan allows {limits[role]} {role} seat{'s' if limits[role] != 1 else ''}, all taken "
                        f"(members and pending invitations): upgrade, or free one first.", "role")


def _lock_tenant(tenant: Tenant) -> None:
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())


def invite(actor: User, tenant: Tenant, email: str, role: str, *,
           limits: dict[str, int | None] | None = None) -> NewInvite:
    """Invite ``email`` to ``tenant`` as ``role`` (commits). A pending invitation for the same email is revoked.
    ``limits`` caps roles that take a paid place (the plan's inbox seats for agents): see ``_check_places``."""
    try:
        email = normalise_email(email)
    except AccountError as exc:
        raise TeamError(exc.message, "email") from None
    if len(email) > 254:
        raise TeamError("An email address is at most 254 characters.", "email")
    _check_role(role)
    _check_grant(actor, role)
    if db.session.scalar(select(User.id).where(User.email == email, User.tenant_id == tenant.id)) is not None:
        raise TeamError("This person is already a member.", "email")
    if limits:
        _lock_tenant(tenant)
        _check_places(tenant, role, limits, email=email)
    now = utcnow()
    for old in db.session.scalars(select(Invite).where(
            Invite.tenant_id == tenant.id, Invite.email == email, Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None))):
        old.revoked_at = now
    token = secrets.token_urlsafe(32)
    row = Invite(tenant_id=tenant.id, email=email, role=role, invited_by_id=actor.id, token_hash=hash_token(token),
                 created_at=now, expires_at=now + INVITE_LIFETIME)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "member.invited", f"Invited {email} as {role}", tenant_id=tenant.id, email=email,
                 role=role, invite_id=row.id)
    db.session.commit()
    return NewInvite(row, token)


def pending_invites(tenant: Tenant) -> list[Invite]:
    return list(db.session.scalars(
        select(Invite).where(Invite.tenant_id == tenant.id, Invite.accepted_at.is_(None),
                             Invite.revoked_at.is_(None), Invite.expires_at > utcnow())
        .order_by(Invite.created_at.desc(), Invite.id.desc())))


def revoke_invite(actor: User, tenant: Tenant, invite_id) -> Invite:
    """Revoke a pending invitation of ``tenant`` (commits); another tenant's is not found."""
    row = _owned_invite(tenant, invite_id)
    if row.accepted_at is not None:
        raise TeamError("This invitation was already accepted.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(actor, "member.invite_revoked", f"Revoked the invitation of {row.email}", tenant_id=tenant.id,
                     email=row.email, invite_id=row.id)
        db.session.commit()
    return row


def _owned_invite(tenant: Tenant, invite_id) -> Invite:
    from saas.errors import NotFound

    try:
        invite_id = int(invite_id)
    except (TypeError, ValueError):
        raise NotFound("No such invitation.") from None
    row = db.session.scalar(select(Invite).where(Invite.id == invite_id, Invite.tenant_id == tenant.id))
    if row is None:
        raise NotFound("No such invitation.")
    return row


# -- accepting -------------------------------------------------------------------------------

INVALID_LINK = "This invitation link is not valid. Check that you copied all of it, or ask for a new invitation."


def usable_invite(token: str, *, lock: bool = False) -> Invite:
    """The pending invitation behind a link's token, or InviteUnusable saying why not."""
    if not token or len(token) > 100:
        raise InviteUnusable(INVALID_LINK, 404)
    query = select(Invite).where(Invite.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update()
    row = db.session.scalar(query)
    if row is None:
        raise InviteUnusable(INVALID_LINK, 404)
    if row.accepted_at is not None:
        raise InviteUnusable("This invitation was already used. Log in instead.", 410)
    if row.revoked_at is not None:
        raise InviteUnusable("This invitation was withdrawn. Ask for a new one if you still need access.", 410)
    if row.expires_at <= utcnow():
        raise InviteUnusable("This invitation has expired (they last 7 days). Ask for a new one.", 410)
    return row


ELSEWHERE = ("This email address already has an account with another organisation; an account belongs to one "
             "organisation. Ask to be invited with another address.")


def account_for(invite_row: Invite) -> User | None:
    return db.session.scalar(select(User).where(User.email == invite_row.email))


def _join(invite_row: Invite, user: User) -> User:
    user.tenant_id = invite_row.tenant_id
    user.role = invite_row.role
    invite_row.accepted_at = utcnow()
    db.session.flush()
    audit.record(user, "member.joined", f"{user.email} joined as {invite_row.role}", tenant_id=invite_row.tenant_id,
                 email=user.email, role=invite_row.role, invite_id=invite_row.id)
    db.session.commit()
    return user


def accept_as_new_user(token: str, password: str) -> User:
    """Create the invitee's account with ``password`` and join the tenant (commits)."""
    if len(password or "") < MIN_PASSWORD:
        raise TeamError(f"Password must be at least {MIN_PASSWORD} characters.", "password")
    if len(password) > 200 or "\x00" in password:
        raise TeamError("Password must be at most 200 characters, without NUL.", "password")
    row = usable_invite(token, lock=True)
    if account_for(row) is not None:
        db.session.rollback()
        raise TeamError(ELSEWHERE)
    user = User(email=row.email, password_hash=generate_password_hash(password), role=row.role)
    db.session.add(user)
    try:
        return _join(row, user)
    except IntegrityError:  # the same email signed up a moment ago
        db.session.rollback()
        raise TeamError(ELSEWHERE) from None


def accept_as(user: User, token: str) -> User:
    """``user`` (logged in) accepts the invitation sent to their email (commits)."""
    row = usable_invite(token, lock=True)
    if user.email != row.email:
        db.session.rollback()
        raise TeamError("This invitation was sent to another email address. Log out, then open the link again.")
    if user.tenant_id is not None or user.is_platform_admin:
        db.session.rollback()
        if user.tenant_id == row.tenant_id:
            raise TeamError("You are already a member.")
        raise TeamError(ELSEWHERE)
    return _join(row, user)


# -- members ---------------------------------------------------------------------------------

def members(tenant: Tenant) -> list[User]:
    return list(db.session.scalars(select(User).where(User.tenant_id == tenant.id)
                                   .order_by(User.created_at, User.id)))


def owners_checked() -> None:
    """Called between counting the owners and changing a member: tests hold a racing change here."""


def _locked_member(tenant: Tenant, user_id) -> User:
    from saas.errors import NotFound

    # Every change to the team locks the tenant's row first: one at a time per tenant.
    db.session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        db.session.rollback()
        raise NotFound("No such member.") from None
    member = db.session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant.id)
                               .execution_options(populate_existing=True))
    if member is None:
        db.session.rollback()
        raise NotFound("No such member.")
    return member


def _refuse_last_owner(tenant: Tenant, member: User, message: str) -> None:
    if member.role != ROLE_OWNER:
        owners_checked()
        return
    owners = db.session.scalar(select(func.count(User.id)).where(User.tenant_id == tenant.id,
                                                                 User.role == ROLE_OWNER))
    owners_checked()
    if owners <= 1:
        db.session.rollback()
        raise TeamError(message)


def change_role(actor: User, tenant: Tenant, user_id, role: str, *,
                limits: dict[str, int | None] | None = None) -> User:
    """Give a member another role (commits). The last owner keeps theirs; only owners touch the owner role.
    ``limits``: as ``invite`` takes them."""
    _check_role(role)
    member = _locked_member(tenant, user_id)
    if member.role == role:
        db.session.rollback()
        return member
    try:
        _check_grant(actor, role, member.role)
    except TeamError:
        db.session.rollback()
        raise
    _refuse_last_owner(tenant, member, "The last owner cannot be given another role: make someone else an "
                                       "owner first.")
    _check_places(tenant, role, limits, member_id=member.id)
    before = member.role
    member.role = role
    audit.record(actor, "member.role_changed", f"{member.email}: {before} → {role}", tenant_id=tenant.id,
                 email=member.email, before=before, after=role)
    db.session.commit()
    return member


def remove_member(actor: User, tenant: Tenant, user_id) -> User:
    """Take a member out of the tenant (commits); their sessions lose access at once. Not the last owner."""
    member = _locked_member(tenant, user_id)
    try:
        _check_grant(actor, member.role)
    except TeamError:
        db.session.rollback()
        raise
    _refuse_last_owner(tenant, member, "The last owner cannot be removed: make someone else an owner first.")
    action, summary = (("member.left", f"{member.email} left") if member.id == actor.id
                       else ("member.removed", f"Removed {member.email} ({member.role})"))
    audit.record(actor, action, summary, tenant_id=tenant.id, email=member.email, role=member.role)
    member.tenant_id = None
    db.session.commit()
    return member


def leave(user: User, tenant: Tenant) -> User:
    """``user`` leaves ``tenant`` (commits); the last owner cannot."""
    member = _locked_member(tenant, user.id)
    _refuse_last_owner(tenant, member, "You are the last owner: make someone else an owner before you leave.")
    audit.record(user, "member.left", f"{member.email} left", tenant_id=tenant.id, email=member.email,
                 role=member.role)
    member.tenant_id = None
    db.session.commit()
    return member
