"""The check of a large audience as a job: the broadcast is `checking` (the API answers 202 with its link)
until the check is ready; a worker killed mid-check leaves its lease and progress, and the next goes on
from there; what the job counts is what a check in the request counts and what starting then sends."""
from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import timedelta

import pytest
from sqlalchemy import update

from saas.billing import entitlements
from saas.broadcasts import check as checks
from saas.broadcasts import check_job
from saas.broadcasts.models import Broadcast
from saas.broadcasts.templates import variables_of
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow
from tests.broadcasts.helpers import Shop, run, sends_to
from tests.broadcasts.processes import check_then_hang
from tests.broadcasts.test_api import api, body
from tests.broadcasts.test_crash import database_url


def counted(check: dict) -> tuple:
    """What a check decided, without when it ran."""
    return (check["audience"], check["recipients"], check["dropped"], check["samples"], check["estimate"],
            check["limits"])


def check_in_request(app, shop, broadcast_id) -> dict:
    """The check of ``broadcast_id`` as a request runs it (read only)."""
    with app.app_context():
        tenant = tenant_snapshot(shop.tenant_id)
        broadcast = db.session.get(Broadcast, broadcast_id)
        number = db.session.get(PhoneNumber, broadcast.phone_number_id)
        found = checks.run(db.session, tenant, entitlements.for_tenant(tenant), broadcast, number,
                           variables_of(db.session, broadcast, number))
        db.session.remove()
    return found


def mixed_audience(shop, count: int = 40) -> None:
    """``count`` contacts who get it, and some the check drops for each of three reasons."""
    shop.contacts(count)
    shop.contacts(3, start=500, consent=None)                       # no opt-in
    shop.contacts(4, start=600, attributes=lambda i: {})            # no value for body.2
    shop.contacts(2, start=700, prefix="9053", digits=3)            # not a valid number


def as_left_by_create(app, broadcast_id: int, audience: int) -> None:
    """The broadcast as create leaves a large one: checking, no check, no lease (its job not yet run)."""
    with app.app_context():
        db.session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(
            status="checking", check_result=None, checked_at=None, check_lease_until=None,
            check_progress={"checked": 0, "audience": audience}))
        db.session.commit()
        db.session.remove()


def test_a_large_audience_is_checked_by_a_job_and_its_counts_are_what_is_sent(app, client, graph, monkeypatch):
    monkeypatch.setitem(app.config, "BROADCAST_CHECK_INLINE_MAX", 20)
    shop = Shop(app, graph)
    shop.template()
    mixed_audience(shop)
    headers = api(app, shop)
    made = client.post("/api/v1/broadcasts", json=body(shop, variables={
        "body.1": {"field": "name", "default": "there"}, "body.2": {"field": "attr:code"}}), headers=headers)
    assert made.status_code == 202, made.get_json()
    answer = made.get_json()
    assert made.headers["Location"] == f"/api/v1/broadcasts/{answer['id']}"
    assert (answer["status"], answer["check"]) == ("checking", None)
    assert answer["check_progress"]["audience"] == 49 and answer["check_progress"]["error"] is None
    assert app.extensions["background"].join(60), "the check's job did not finish"
    ready = client.get(made.headers["Location"], headers=headers).get_json()
    assert (ready["status"], ready["check_progress"]) == ("draft", None)
    check = ready["check"]
    assert check["recipients"] == 40
    assert {k: v for k, v in check["dropped"]["by_reason"].items() if v} == {
        "no_opt_in": 3, "missing_variable": 4, "invalid_number": 2}
    assert counted(check) == counted(check_in_request(app, shop, answer["id"]))
    assert client.post(f"/api/v1/broadcasts/{answer['id']}/start", headers=headers).status_code == 200
    run(app)
    assert sorted(sends_to(graph)) == sorted(f"90532{i:07d}" for i in range(40))
    recipients = shop.recipients(answer["id"])
    skipped = {}
    for r in recipients:
        if r.status == "skipped":
            skipped[r.skip_reason] = skipped.get(r.skip_reason, 0) + 1
    assert skipped == {k: v for k, v in check["dropped"]["by_reason"].items() if v}
    assert sum(r.status == "sent" for r in recipients) == check["recipients"]


def test_a_broadcast_being_checked_cannot_start_and_a_new_check_of_a_large_audience_is_202(app, client, graph,
                                                                                          monkeypatch):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(30)
    headers = api(app, shop)
    broadcast_id = shop.create()
    as_left_by_create(app, broadcast_id, 30)
    refused = client.post(f"/api/v1/broadcasts/{broadcast_id}/start", headers=headers)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "broadcast_state"
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/check", headers=headers).status_code == 409
    with app.app_context():
        check_job.run(broadcast_id)
        db.session.remove()
    monkeypatch.setitem(app.config, "BROADCAST_CHECK_INLINE_MAX", 10)
    again = client.post(f"/api/v1/broadcasts/{broadcast_id}/check", headers=headers)
    assert again.status_code == 202 and again.get_json()["status"] == "checking"
    assert again.headers["Location"] == f"/api/v1/broadcasts/{broadcast_id}"
    assert app.extensions["background"].join(60)
    assert shop.get(broadcast_id)["check"]["recipients"] == 30
    monkeypatch.setitem(app.config, "BROADCAST_CHECK_INLINE_MAX", 100)
    inline = client.post(f"/api/v1/broadcasts/{broadcast_id}/check", headers=headers)
    assert inline.status_code == 200 and inline.get_json()["check"]["recipients"] == 30


def test_a_worker_killed_mid_check_leaves_its_lease_and_the_next_goes_on_from_its_progress(app, graph):
    shop = Shop(app, graph)
    shop.template()
    mixed_audience(shop, 200)
    broadcast_id = shop.create()
    expected = counted(shop.get(broadcast_id)["check"])
    as_left_by_create(app, broadcast_id, 209)
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    child = context.Process(target=check_then_hang, args=(database_url(app), broadcast_id, 20, 3, ready, go))
    child.start()
    try:
        assert ready.wait(120), "the check's worker did not get three chunks in"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    with app.app_context():
        left = db.session.get(Broadcast, broadcast_id)
        assert (left.status, left.check_result, left.check_progress["checked"]) == ("checking", None, 60)
        assert check_job.claim(db.session, broadcast_id) is None   # its lease holds: nobody else takes it
        assert check_job.resume_stalled() == 0
        # The lease runs out: the sweep queues the check again, and a job claims it.
        db.session.execute(update(Broadcast).where(Broadcast.id == broadcast_id)
                           .values(check_lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert check_job.resume_stalled() == 1
        db.session.remove()
    assert app.extensions["background"].join(60)
    found = shop.get(broadcast_id)
    assert found["status"] == "draft" and counted(found["check"]) == expected
    shop.call("start", broadcast_id)
    run(app)
    assert len(sends_to(graph)) == 200 == found["check"]["recipients"]


def test_a_worker_that_lost_its_lease_writes_nothing_more_and_a_cancelled_check_stops(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(5)
    broadcast_id = shop.create()
    as_left_by_create(app, broadcast_id, 5)
    with app.app_context():
        first = check_job.claim(db.session, broadcast_id)
        # The first worker stalls past its lease; another takes the check over.
        db.session.execute(update(Broadcast).where(Broadcast.id == broadcast_id)
                           .values(check_lease_until=first - timedelta(minutes=10)))
        db.session.commit()
        second = check_job.claim(db.session, broadcast_id)
        assert second is not None
        with pytest.raises(check_job.LeaseLost):
            check_job._renew(db.session, broadcast_id, first - timedelta(minutes=10), check_progress={"checked": 1})
        db.session.rollback()
        assert db.session.get(Broadcast, broadcast_id).check_progress == {"checked": 0, "audience": 5}
        db.session.remove()
    # Cancelled while the second worker holds it: its next chunk stops it, and a late job does nothing.
    shop.call("cancel", broadcast_id)
    with app.app_context():
        with pytest.raises(check_job.LeaseLost):
            check_job._renew(db.session, broadcast_id, second, check_progress={"checked": 1})
        db.session.rollback()
        check_job.run(broadcast_id)
        cancelled = db.session.get(Broadcast, broadcast_id)
        assert (cancelled.status, cancelled.check_result) == ("cancelled", None)
        db.session.remove()


def test_a_check_that_fails_leaves_a_draft_that_says_so(app, client, graph, monkeypatch):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3)
    broadcast_id = shop.create()
    as_left_by_create(app, broadcast_id, 3)

    def broken(*args):
        raise RuntimeError("the rule broke")

    monkeypatch.setattr(checks, "assess", broken)
    with app.app_context():
        check_job.run(broadcast_id)
        db.session.remove()
    answer = client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=api(app, shop)).get_json()
    assert (answer["status"], answer["check"]) == ("draft", None)
    assert answer["check_progress"]["error"] == check_job.FAILED


def test_a_stalled_check_whose_job_was_lost_is_queued_again(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(4)
    broadcast_id = shop.create()
    as_left_by_create(app, broadcast_id, 4)
    with app.app_context():
        assert check_job.resume_stalled() == 0    # just asked for: its job may still come
        assert check_job.resume_stalled(now=utcnow() + check_job.QUEUED_GRACE + timedelta(seconds=1)) == 1
        db.session.remove()
    assert app.extensions["background"].join(60)
    assert shop.get(broadcast_id)["check"]["recipients"] == 4
