"""Email with REDIS_URL: every message reaches the SMTP sink through the real RQ worker, retried by RQ, never lost.

The app here is a web process configured with a Redis of the test's own; the worker is the Procfile's
`worker` command, a separate process, on the same database and Redis. A password reset is looked up and
written by a worker job, whose work-horse process ends with the job: its email must be on Redis before
the job returns. The other emails (verification, an invitation, a billing notice) are sent from web
requests and delivered by the worker the same way.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas import create_app
from saas.extensions import db, limiter
from tests import factories
from tests.redis_server import ProcfileProcess, RedisServer, app_environment, wait_until

MAIL_RETRIES = 2


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def web_app(app, redis_url: str, mail_url: str, **config):
    """A web process's app on the test database, with REDIS_URL."""
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "SERVER_NAME": None, "HOUSEKEEPING": False, "WHATSAPP_PAIR_RATE_BURST": 0,
                       "REDIS_URL": redis_url, "MAIL_URL": mail_url,
                       "MAIL_FROM": "Relay <no-reply@relay.example.com>", **config})


@pytest.fixture
def on_redis(app, mailbox, redis_server, tmp_path):
    """(web app, worker process): the app with REDIS_URL and the Procfile's worker, retries without waits."""
    retries = {"MAIL_RETRIES": MAIL_RETRIES, "MAIL_RETRY_SECONDS": 0.01}
    web = web_app(app, redis_server.url, mailbox.url, **retries)
    env = app_environment(app.config["SQLALCHEMY_DATABASE_URI"], redis_server.url, mailbox.url,
                          **{name: str(value) for name, value in retries.items()})
    worker = ProcfileProcess("worker", env, tmp_path)
    try:
        yield web, worker
    finally:
        worker.stop()
        web.extensions["background"].join()
        with web.app_context():
            db.engine.dispose()  # this app's pooled connections go with it
        # The rate-limit store outside a request is the last app's: this test's app is gone, the suite's is back.
        limiter.init_app(app)


def arrives(mailbox, worker, address: str, subject: str, seconds: float = 30):
    wait_until(lambda: mailbox.to(address, subject), seconds,
               lambda: f"no '{subject}' to {address}; sink has {[(m['To'], m['Subject']) for m in mailbox.messages]}"
                       f"\n--- worker\n{worker.log()}")
    return mailbox.to(address, subject)


def test_a_password_reset_asked_for_with_redis_arrives(on_redis, mailbox):
    web, worker = on_redis
    with web.app_context():
        from saas.onboarding import emails

        factories.make_tenant(email="owner@reset.example.com")
        emails.request_reset("owner@reset.example.com", "http://localhost")
        db.session.remove()
    [message] = arrives(mailbox, worker, "owner@reset.example.com", "Reset your password")
    assert "/reset-password/" in mailbox.text(message)
    # The lookup ran in the worker, and so did the delivery: nothing was left in a process that ended.
    assert worker.log().count("saas.onboarding.emails.send_reset") >= 1
    assert "saas.mail.send_one" in worker.log()


def test_verification_invitation_and_billing_notice_arrive_through_the_worker(on_redis, mailbox):
    web, worker = on_redis
    # The views call these services; links are built from the request, as a view's would be.
    with web.test_request_context("/"):
        from saas.billing import notices
        from saas.billing.models import Subscription
        from saas.onboarding import emails
        from saas.tenants import team
        from saas.tenants.models import User

        tenant = factories.make_tenant(email="owner@notices.example.com", verified=False)
        owner = db.session.scalar(select(User).where(User.email == "owner@notices.example.com"))
        emails.send_verification(owner)
        new = team.invite(owner, tenant, "new.member@notices.example.com", "developer")
        team.deliver_invite(new.invite, f"http://localhost/invite/{new.token}")
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        subscription.status, subscription.stripe_subscription_id = "canceled", "sub_notice"
        db.session.commit()
        notices.after_applied({"id": "evt_notice", "type": "customer.subscription.deleted",
                               "data": {"object": {"id": "sub_notice", "object": "subscription"}}}, tenant.id)
        db.session.remove()
    arrives(mailbox, worker, "owner@notices.example.com", "Verify your email address")
    arrives(mailbox, worker, "new.member@notices.example.com", "You are invited")
    arrives(mailbox, worker, "owner@notices.example.com", "subscription is canceled")
    assert worker.log().count("saas.mail.send_one") >= 3


def test_a_refused_email_is_tried_again_by_rq_until_it_goes(on_redis, mailbox):
    web, worker = on_redis
    mailbox.fail_next(MAIL_RETRIES)
    with web.app_context():
        from saas.onboarding import emails

        factories.make_tenant(email="owner@retry.example.com")
        emails.request_reset("owner@retry.example.com", "http://localhost")
        db.session.remove()
    arrives(mailbox, worker, "owner@retry.example.com", "Reset your password")
    assert mailbox.sink.attempts == MAIL_RETRIES + 1
    assert worker.log().count("RQ will try again") == MAIL_RETRIES


def test_an_email_refused_every_time_is_kept_by_rq_and_sent_when_requeued(on_redis, mailbox):
    from rq.registry import FailedJobRegistry

    web, worker = on_redis
    mailbox.fail_next(1000)
    with web.app_context():
        from saas.mail import send_mail

        send_mail("someone@kept.example.com", "Kept", "body")
    queue = web.extensions["rq_queue"]
    registry = FailedJobRegistry(queue=queue)
    wait_until(lambda: registry.get_job_ids(), 30, worker.log)
    assert mailbox.sink.attempts == MAIL_RETRIES + 1
    assert "not sent after its last attempt" in worker.log()
    mailbox.fail_next(0)
    for job_id in registry.get_job_ids():
        registry.requeue(job_id)
    arrives(mailbox, worker, "someone@kept.example.com", "Kept")


def test_a_job_taken_off_the_queue_and_never_started_is_run(on_redis, mailbox):
    """Redis lost between RQ's taking a job and starting it strands the job on RQ's intermediate list (RQ
    would fail it unrun a minute later): the worker puts it back on the queue and runs it, once."""
    from saas import jobs

    web, worker = on_redis
    queue = web.extensions["rq_queue"]
    wait_until(lambda: "Listening on" in worker.log() or "default" in worker.log(), 30, worker.log)
    # The state a worker leaves when Redis goes away right after its BLMOVE: the job saved, its id only on the
    # intermediate list, never marked started.
    job = queue.create_job(jobs.RUN_JOB, args=("saas.mail.send_one", ["someone@stranded.example.com", "Stranded",
                                                                      "body"]))
    job.save()
    queue.connection.lpush(queue.intermediate_queue_key, job.id)
    arrives(mailbox, worker, "someone@stranded.example.com", "Stranded", seconds=40)
    assert "never started; it is queued again" in worker.log()
    assert queue.connection.llen(queue.intermediate_queue_key) == 0
    assert len(mailbox.to("someone@stranded.example.com", "Stranded")) == 1
