"""Automation's settled runs are kept AUTOMATION_RUN_RETENTION_DAYS, then deleted by the housekeeping; a run
still waiting to send its reply is kept however old, and the replies and the thread's log stay."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from saas.automation import retention
from saas.automation.models import PENDING, Run
from saas.extensions import db
from saas.timeutil import utcnow
from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to
from tests.inbox.helpers import CUSTOMER, post_inbound, text


def test_settled_runs_older_than_the_retention_go_and_the_rest_stay(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop)
    for n in range(3):
        post_inbound(app, client, shop, text(f"price {n}", message_id=f"wamid.retention-{n}"))
    old, recent, waiting = (run.id for run in runs_of(app, shop.tenant_id))
    now = utcnow()
    with app.app_context():
        db.session.execute(update(Run).where(Run.id.in_([old, waiting])).values(created_at=now - timedelta(days=31)))
        db.session.execute(update(Run).where(Run.id == recent).values(created_at=now - timedelta(days=29)))
        db.session.execute(update(Run).where(Run.id == waiting).values(status=PENDING))
        db.session.commit()
        assert retention.prune(db.session, keep=timedelta(days=30), now=now) == 1
        db.session.remove()
    assert sorted(run.id for run in runs_of(app, shop.tenant_id)) == sorted([recent, waiting])
    assert len(sent_to(whatsapp, CUSTOMER)) == 3  # what was sent is not a run's to take back


def test_every_process_housekeeping_prunes_with_the_configured_retention(app, client, whatsapp):
    from saas import create_app

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop)
    post_inbound(app, client, shop, text("price", message_id="wamid.retention-housekeeping"))
    [run] = runs_of(app, shop.tenant_id)
    with app.app_context():
        db.session.execute(update(Run).where(Run.id == run.id).values(created_at=utcnow() - timedelta(days=3)))
        db.session.commit()
        db.session.remove()
    process = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                          "HOUSEKEEPING": True, "AUTOMATION_RUN_RETENTION_DAYS": 2})
    try:
        tasks = {task[0]: task for task in process.extensions["background"]._tasks}
        assert tasks["automation runs kept"][1] == 3600.0
        process.extensions["background"].run_due_tasks(force=True)
    finally:
        with process.app_context():
            db.engine.dispose()
    assert runs_of(app, shop.tenant_id) == []
