"""The inbox's live side: the Server-Sent Events stream, the fragments the page's script reloads, media.

/inbox/stream sends ``event: thread`` (a thread id) for each thread of the user's own tenant that changed
(saas.inbox.live: Redis pub/sub or polling, heartbeats, a bounded life); the script then fetches the
fragment it shows (/inbox/rows, /inbox/threads/<id>/entries). Media of inbound messages is read through
WhatsApp with the number's token, never linked to Meta's URL.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template, stream_with_context
from sqlalchemy.orm import Session

from saas.errors import ApiError, NotFound
from saas.extensions import db
from saas.inbox import actions, live
from saas.inbox import queue as listing
from saas.messaging.numbers import media
from saas.portal.access import allowed, tenant_required
from saas.timeutil import utcnow

bp = Blueprint("inbox_live", __name__)
CHUNK = 64 * 1024


@bp.get("/inbox/stream")
@tenant_required
@allowed("inbox")
def stream(tenant):
    # The stream outlives the request's context: it reads in short transactions of a session of its own.
    lines = live.for_app(current_app).stream(tenant.id, Session(bind=db.engine))
    db.session.remove()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(lines, mimetype="text/event-stream", headers=headers)


@bp.get("/inbox/rows")
@tenant_required
@allowed("inbox")
def rows(tenant):
    threads = listing.queue(tenant)
    members = {m.id: m for m in actions.team_members(tenant)}
    return render_template("portal/inbox/_rows.html", threads=threads, now=utcnow(), time_left=listing.time_left,
                           members=members)


@bp.get("/inbox/threads/<thread_id>/entries")
@tenant_required
@allowed("inbox")
def entries(tenant, thread_id):
    try:
        thread = actions.get_thread(tenant, thread_id)
    except NotFound:
        abort(404)
    actions.mark_read(tenant, thread)
    names = {m.id: m.email for m in actions.team_members(tenant)}
    return render_template("portal/inbox/_entries.html", entries=listing.entries(tenant, thread),
                           member_names=names)


@bp.get("/inbox/media/<media_id>")
@tenant_required
@allowed("inbox")
def media_content(tenant, media_id):
    try:
        ref = media.owned(tenant, media_id)
        upstream = media.open_content(current_app.extensions["graph"], ref)
    except ApiError as exc:
        abort(404 if exc.status == 404 else 502)

    kind = upstream.headers.get("Content-Type") or "application/octet-stream"
    safe = kind.split(";")[0].strip().lower()
    # Only kinds a browser shows inertly are shown inline; anything else downloads.
    inline = safe in ("image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/mpeg", "video/mp4")
    return Response(stream_with_context(media.capped_chunks(upstream, current_app.config["MEDIA_MAX_BYTES"],
                                                             ref.media_id, CHUNK)), headers={
        "Content-Type": safe if inline else "application/octet-stream",
        "Content-Disposition": "inline" if inline else "attachment", "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})
