"""One bad item of a WhatsApp notification never stops the others: every good item applies, every bad
one is kept with why (whatsapp_unapplied_items), and nothing is a 500.

An item is refused for what it holds (no usable id, sender or status name, not an object) or refused
by the database; the second kind is made here by a real trigger in the test's own database.
"""
from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from saas.extensions import db
from saas.messaging.inbound import notifications, unapplied
from saas.messaging.inbound.objects import storable
from saas.messaging.models import Message, UnappliedItem
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.factories import settle
from tests.webhooks.test_whatsapp_inbound import acme, deliver, kept_items, message, stored, whatsapp  # noqa: F401

REFUSED = "refused-by-the-database"


@contextlib.contextmanager
def database_refuses(app, marker=REFUSED):
    """The database refuses to insert or update a message whose wamid holds ``marker`` (a trigger)."""
    with app.app_context():
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"""CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN
                    IF NEW.wa_message_id LIKE '%{marker}%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                    RETURN NEW; END $$ LANGUAGE plpgsql"""))
                for when in ("INSERT", "UPDATE"):
                    conn.execute(text(f"CREATE TRIGGER refuse_marked_{when.lower()} BEFORE {when} ON messages "
                                      "FOR EACH ROW EXECUTE FUNCTION refuse_marked()"))
            else:
                for when in ("INSERT", "UPDATE"):
                    conn.execute(text(f"CREATE TRIGGER refuse_marked_{when.lower()} BEFORE {when} ON messages "
                                      f"WHEN NEW.wa_message_id LIKE '%{marker}%' "
                                      "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
        db.session.remove()
    try:
        yield
    finally:
        with app.app_context():
            with db.engine.begin() as conn:
                for when in ("insert", "update"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS refuse_marked_{when}"
                                      + (" ON messages" if conn.dialect.name == "postgresql" else "")))
                if conn.dialect.name == "postgresql":
                    conn.execute(text("DROP FUNCTION IF EXISTS refuse_marked()"))
            db.session.remove()


def add_message(app, number, wamid=None) -> str:
    with app.app_context():
        if wamid is None:
            wamid = wa.add_sent_message(number)
        else:
            now = utcnow()
            db.session.add(Message(tenant_id=number.tenant_id, phone_number_id=number.id, direction="out",
                                   wa_id="16505551234", type="text", body_summary="hello", wa_message_id=wamid,
                                   status="accepted", created_at=now, updated_at=now))
            db.session.commit()
        db.session.remove()
    return wamid


def test_an_item_the_database_refuses_is_kept_with_its_error_and_every_other_item_applies(whatsapp, client, acme):
    sent, failing = add_message(whatsapp, acme), add_message(whatsapp, acme)
    refused = add_message(whatsapp, acme, wa.wamid(REFUSED))
    good_in, refused_in = wa.inbound("text", {"body": "kept"}), wa.inbound("text", {"body": "later"},
                                                                            message_id=wa.wamid(REFUSED))
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[good_in, refused_in],
        statuses=[wa.status(sent, "delivered"), wa.status(refused, "delivered"), wa.failed(failing)])))
    with database_refuses(whatsapp):
        deliver(whatsapp, client, payload)
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error is None
    assert row.outcome == "messages 1; statuses 2; kept unapplied 2"
    assert message(whatsapp, sent).status == "delivered"
    assert (message(whatsapp, failing).status, message(whatsapp, failing).error_code) == ("failed", 131026)
    assert message(whatsapp, good_in["id"]).body_summary == "kept"
    assert message(whatsapp, refused).status == "accepted" and message(whatsapp, refused_in["id"]) is None
    items = kept_items(whatsapp)
    assert [(k.notification_id, k.location, k.field, k.wa_message_id, k.attempts) for k in items] == [
        (row.id, "entry 0, change 0, statuses[1]", "messages", refused, 1),
        (row.id, "entry 0, change 0, messages[1]", "messages", refused_in["id"], 1)]
    assert all("refused by the test" in k.error and k.next_try_at is not None and k.applied_at is None
               for k in items)
    # Each kept item is a notification of its own, holding that item alone.
    held = json.loads(items[0].body)["entry"][0]["changes"][0]["value"]
    assert held["statuses"] == [payload["entry"][0]["changes"][0]["value"]["statuses"][1]] and "messages" not in held

    # The database takes them now: the sweep applies them once their next try is due.
    with whatsapp.app_context():
        notifications.apply_pending(now=utcnow())  # not due yet
        assert [k.applied_at for k in kept_items(whatsapp)] == [None, None]
        notifications.apply_pending(now=utcnow() + timedelta(minutes=2))
        db.session.remove()
    assert message(whatsapp, refused).status == "delivered"
    assert message(whatsapp, refused_in["id"]).body_summary == "later"
    assert all(k.applied_at is not None and k.attempts == 2 for k in kept_items(whatsapp))


def test_an_item_still_refused_waits_longer_each_time_then_is_left_for_an_operator(whatsapp, client, acme):
    refused = add_message(whatsapp, acme, wa.wamid(REFUSED))
    with database_refuses(whatsapp):
        deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, statuses=[wa.status(refused, "read")]))))
        (item,) = kept_items(whatsapp)
        waits, at = [], item.failed_at
        with whatsapp.app_context():
            for _ in range(unapplied.MAX_TRIES - 1):
                at = db.session.get(UnappliedItem, item.id).next_try_at
                assert unapplied.retry_due(now=at).kept == 1
                row = db.session.get(UnappliedItem, item.id)
                waits.append(row.next_try_at - at if row.next_try_at else None)
                db.session.remove()
        assert waits == [timedelta(minutes=2 ** n) for n in range(1, unapplied.MAX_TRIES - 1)] + [None]
        (item,) = kept_items(whatsapp)
        assert (item.attempts, item.next_try_at, item.applied_at) == (unapplied.MAX_TRIES, None, None)
    with whatsapp.app_context():
        assert unapplied.retry_due(now=utcnow() + timedelta(days=30)).kept == 0  # left alone
        assert unapplied.retry([item.id]).applied == 1  # an operator, after the fix
        db.session.remove()
    assert message(whatsapp, refused).status == "read"


def test_halves_of_surrogate_pairs_are_replaced_in_text_and_refused_in_ids(whatsapp, client, acme):
    text_item = wa.inbound("text", {"body": "broken \ud800 emoji \udfff"})
    caption = wa.inbound("image", {"caption": "\ud83d", "id": "1003383421387299", "mime_type": "image/\ud800"})
    bad_id = wa.inbound("text", {"body": "fine"}, message_id="wamid.\ud800")
    bad_sender = wa.inbound("text", {"body": "fine"}, sender="1650555\udc00")
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact(name="Sheena \ud800")], messages=[text_item, caption, bad_id, bad_sender]))))
    (row,) = stored(whatsapp)
    assert row.error is None and row.outcome == "messages 2; kept unapplied 2"
    assert message(whatsapp, text_item["id"]).body_summary == "broken \ufffd emoji \ufffd"
    assert message(whatsapp, text_item["id"]).raw_message == text_item  # kept as WhatsApp sent it
    assert message(whatsapp, caption["id"]).body_summary == "\ufffd"
    assert [(k.location, k.error.split(" (")[0]) for k in kept_items(whatsapp)] == [
        ("entry 0, change 0, messages[2]", "no usable id"), ("entry 0, change 0, messages[3]", "no usable sender")]
    # What is kept is stored as ASCII JSON: the half pair is still there, escaped.
    assert "\\ud800" in kept_items(whatsapp)[0].body


def test_kept_items_are_listed_and_sent_again_from_the_command_line(whatsapp, client, acme, runner):
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.status(wa.wamid(), "deleted")]))))
    (item,) = kept_items(whatsapp)
    listed = runner.invoke(args=["whatsapp", "unapplied"])
    assert listed.exit_code == 0, listed.output
    assert f"{item.id} " in listed.output and "entry 0, change 0, statuses[0]" in listed.output
    assert "status 'deleted' is not one a message takes" in listed.output and "tried again only by hand" in listed.output
    again = runner.invoke(args=["whatsapp", "retry-unapplied", "--all"])
    assert again.exit_code == 0, again.output
    assert "Applied 0; still kept 1." in again.output
    (item,) = kept_items(whatsapp)
    assert item.attempts == 2 and item.applied_at is None


def test_kept_items_outlive_the_pruned_notification(whatsapp, client, acme):
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=["not an object"]))))
    with whatsapp.app_context():
        assert notifications.prune(keep=timedelta(days=7), now=utcnow() + timedelta(days=8)) == 1
        db.session.remove()
    (item,) = kept_items(whatsapp)
    assert item.notification_id is None and item.error == "not a JSON object"
    assert json.loads(item.body)["entry"][0]["changes"][0]["value"]["statuses"] == ["not an object"]


# -- fuzzed: good items and items that each break something, mixed ------------------------------

# Text WhatsApp might send, and text it never would: halves of surrogate pairs, NUL, far too long.
odd_text = st.lists(st.text(max_size=12) | st.sampled_from(["\ud800", "\udfff", "\ud83d", "\x00", "x" * 5000, "é"]),
                    max_size=4).map("".join)
wrong = st.none() | st.integers() | st.booleans() | st.lists(st.integers(), max_size=2) | st.dictionaries(
    st.text(max_size=3), st.integers(), max_size=2) | odd_text
bad_ids = st.sampled_from([None, "", "wamid." + "x" * 200, "wamid.\x00", "wamid.\ud800", ["wamid.x"], {"id": 1}, 1.5])
bad_senders = st.sampled_from(["1" * 65, "1650\x00555", "1650\ud800", ["16505551234"]])


@st.composite
def good_status(draw):
    name = draw(st.sampled_from(["sent", "delivered", "read", "failed"]))
    item = ("status", name)
    noise = draw(st.fixed_dictionaries({}, optional={"timestamp": wrong, "conversation": wrong, "pricing": wrong,
                                                     "recipient_id": wrong, "biz_opaque_callback_data": odd_text}))
    return item, noise, draw(odd_text)


@st.composite
def good_message(draw):
    kind = draw(st.sampled_from(["text", "image", "reaction", "interactive", "order", "location", "bogus", None]))
    body = {"body": draw(odd_text), "caption": draw(odd_text), "emoji": draw(odd_text), "type": draw(wrong),
            "product_items": [{"quantity": draw(wrong)}], "name": draw(odd_text), "id": draw(odd_text)}
    noise = draw(st.fixed_dictionaries({}, optional={"timestamp": wrong, "context": wrong, "errors": wrong}))
    return ("message", kind), noise, body


bad_item = st.one_of(
    st.tuples(st.just("status id"), bad_ids),
    st.tuples(st.just("status name"), st.sampled_from([None, 7, {"a": 1}, ["sent"], "sent\x00", "se\ud800nt",
                                                       "s" * 41])),
    st.tuples(st.just("unknown status"), st.sampled_from(["deleted", "warning", "bogus"])),
    st.tuples(st.just("message id"), bad_ids),
    st.tuples(st.just("sender"), bad_senders),
    st.tuples(st.just("status not an object"), wrong.filter(lambda v: not isinstance(v, dict))),
    st.tuples(st.just("message not an object"), wrong.filter(lambda v: not isinstance(v, dict))),
)
WHY = {"status id": "no usable id", "message id": "no usable id", "status name": "no usable status name",
       "unknown status": "is not one a message takes", "sender": "no usable sender",
       "status not an object": "not a JSON object", "message not an object": "not a JSON object"}


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(goods=st.lists(st.one_of(good_status(), good_message()), min_size=1, max_size=6),
       bads=st.lists(bad_item, max_size=5), failed_twice=st.integers(min_value=2, max_value=3),
       duplicate=st.booleans(), order=st.randoms(use_true_random=False))
def test_fuzzed_notifications_apply_every_good_item_and_keep_every_bad_one(whatsapp, client, acme, goods, bads,
                                                                            failed_twice, duplicate, order):
    statuses, messages, expected, refused = [], [], [], []
    # Several failed statuses in one notification, always.
    goods = goods + [(("status", "failed"), {}, "")] * failed_twice
    for (kind, what), noise, junk in goods:
        if kind == "status":
            wamid = add_message(whatsapp, acme)
            item = wa.failed(wamid, title=junk, details=junk) if what == "failed" else wa.status(wamid, what)
            statuses.append(dict(item, **noise))
            expected.append(("status", wamid, what))
        else:
            item = dict(wa.inbound(what, junk) if what else wa.inbound("text", junk, type=None), **noise)
            messages.append(item)
            expected.append(("message", item["id"], None))
    if duplicate:
        statuses += statuses[:1]
        messages += messages[:1]
    order.shuffle(statuses)
    order.shuffle(messages)
    for case, value in bads:
        if case.startswith("status"):
            item = wa.status(add_message(whatsapp, acme), "delivered")
            if case == "status id":
                item["id"] = value
            elif case == "status name":
                item["status"] = value
            else:
                item = value
            statuses.insert(order.randrange(len(statuses) + 1), item)
            refused.append((case, item, "statuses"))
        elif case == "unknown status":
            item = wa.status(add_message(whatsapp, acme), value)
            statuses.insert(order.randrange(len(statuses) + 1), item)
            refused.append((case, item, "statuses"))
        else:
            item = wa.inbound("text", {"body": "refused"}, sender=value if case == "sender" else "16505551234")
            if case == "message id":
                item["id"] = value
            elif case == "message not an object":
                item = value
            messages.insert(order.randrange(len(messages) + 1), item)
            refused.append((case, item, "messages"))
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact(name="Sheena \ud800")], statuses=statuses, messages=messages)))
    before = {row.id for row in stored(whatsapp)}
    response = deliver(whatsapp, client, payload)
    assert response.status_code == 200
    (row,) = [row for row in stored(whatsapp) if row.id not in before]
    assert row.processed_at is not None and row.error is None, row.error

    for kind, wamid, status in expected:
        found = message(whatsapp, wamid)
        if kind == "status":
            assert found.status == status, (wamid, status)
        else:
            assert found is not None and found.direction == "in"
            assert storable(found.body_summary) and len(found.body_summary) <= 300 and len(found.type) <= 30
    kept = {k.location: k for k in kept_items(whatsapp) if k.notification_id == row.id}
    places = []
    for case, item, key in refused:
        listed = statuses if key == "statuses" else messages
        index = next(i for i, candidate in enumerate(listed) if candidate is item)
        place = f"entry 0, change 0, {key}[{index}]"
        places.append(place)
        assert place in kept, (case, item, sorted(kept))
        assert WHY[case] in kept[place].error, (case, kept[place].error)
        assert kept[place].next_try_at is None  # refused for what it holds: an operator's to send again
    assert sorted(kept) == sorted(places)


@pytest.mark.parametrize("body", [
    {"object": "whatsapp_business_account", "entry": ["not an entry", {"id": "1", "changes": [7, None]},
                                                      {"id": "2", "changes": {"field": "messages"}}]},
    {"object": "whatsapp_business_account", "entry": [{"id": "\ud800", "changes": [
        {"field": "messages\x00", "value": {}}, {"field": "account_update", "value": {"event": "\ud800\x00"}}]}]},
])
def test_parts_that_are_not_changes_are_kept_and_odd_fields_named(whatsapp, client, acme, body):
    deliver(whatsapp, client, body)
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error is None
    assert storable(row.outcome)
    if isinstance(body["entry"][0], str):
        assert [(k.location, k.error) for k in kept_items(whatsapp)] == [
            ("entry 0", "not a JSON object"), ("entry 1, change 0", "not a JSON object"),
            ("entry 1, change 1", "not a JSON object"), ("entry 2, changes", "changes is not a list")]
    else:
        assert "unknown field" in row.outcome and "unknown accounts: (none)" in row.outcome


def test_a_notification_given_up_after_its_last_try_is_listed_and_applied_by_hand(whatsapp, acme, runner):
    from saas.messaging.models import WhatsAppNotification

    item = wa.inbound("text", {"body": "after the outage"})
    with whatsapp.app_context():
        db.session.add(WhatsAppNotification(
            body=wa.body_of(wa.notification(acme.waba_id, ("messages", wa.messages_value(
                acme, contacts=[wa.contact()], messages=[item])))).decode(),
            received_at=utcnow() - timedelta(hours=3), attempts=notifications.MAX_ATTEMPTS,
            error="OperationalError: the database was down"))
        db.session.commit()
        assert notifications.apply_pending(older_than=timedelta(0)) == 0  # the sweep has given up on it
        db.session.remove()
    listed = runner.invoke(args=["whatsapp", "unapplied"])
    assert "not applied after 10 tries: OperationalError: the database was down" in listed.output
    assert runner.invoke(args=["whatsapp", "retry-unapplied", "--all"]).exit_code == 0
    assert message(whatsapp, item["id"]).body_summary == "after the outage"
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error is None


def test_a_body_nested_deeper_than_a_parser_goes_is_kept_with_its_error_and_not_retried(whatsapp, client):
    from tests.webhooks.test_whatsapp_inbound import SECRET

    body, headers = wa.signed(b'{"entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}", SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(whatsapp)
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error.startswith("not a notification: RecursionError")
