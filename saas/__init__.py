"""WhatsApp Business messaging with plans, metering and Stripe billing, for many tenants."""
from __future__ import annotations

import os

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers, commands.

    ``config`` overrides settings read from the environment (tests use it).
    Migrations are not run here; the Procfile's release phase runs them.
    """
    app = Flask(__name__, instance_relative_config=True,
                template_folder=os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates"))
    from saas.json_codec import OrjsonProvider

    app.json = OrjsonProvider(app)
    from saas import config as settings

    app.config.update(settings.load(app.instance_path))
    if config:
        app.config.update(config)
    os.makedirs(app.instance_path, exist_ok=True)
    if app.config.get("TRUSTED_PROXIES"):
        # The client address and scheme as the trusted proxies saw them (throttles count per address).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    register_logging(app)
    register_extensions(app)
    register_services(app)
    register_event_consumers(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security_headers(app)
    register_commands(app)
    from saas.request_size import BodyLimit, SizedRequest

    app.request_class = SizedRequest
    app.wsgi_app = BodyLimit(app.wsgi_app, app)
    return app


def register_logging(app: Flask) -> None:
    from saas import logs

    logs.configure(app)


def register_extensions(app: Flask) -> None:
    from saas import database, jobs
    from saas.extensions import csrf, db, limiter, login_manager, migrate
    from saas.portal.sessions import CookieSessions

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    app.session_interface = CookieSessions()

    @app.after_request
    def retry_after_only_on_429_and_503(response):
        from flask import g

        # A refusal that knows its own wait (a throttled form, WhatsApp's pair rate, a plan's limit, the
        # database coming back) says it; no other answer carries a Retry-After.
        if response.status_code in (429, 503) and g.get("retry_after") is not None:
            response.headers["Retry-After"] = g.retry_after
        elif response.status_code != 429:
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)
    from saas.api.plan_limits import PlanLimits

    app.extensions["plan_limits"] = PlanLimits(limiter)
    jobs.init_app(app)
    from saas import mail

    mail.init_app(app)
    # Every model module, so metadata (and Alembic) sees all tables.
    from saas.automation import models as _automation  # noqa: F401
    from saas.billing import models as _billing  # noqa: F401
    from saas.broadcasts import models as _broadcasts  # noqa: F401
    from saas.contacts import models as _contacts  # noqa: F401
    from saas.inbox import models as _inbox  # noqa: F401
    from saas.messaging import models as _messaging  # noqa: F401
    from saas.metering import models as _metering  # noqa: F401
    from saas.costs import models as _costs  # noqa: F401
    from saas.analytics import models as _analytics  # noqa: F401
    from saas.orders import models as _orders  # noqa: F401
    from saas.audit import models as _audit  # noqa: F401
    from saas.tenants import models as _tenants  # noqa: F401
    from saas import outbox as _outbox  # noqa: F401


def register_services(app: Flask) -> None:
    """The services the faces, the CLI and workers call, with their collaborators, and the housekeeping
    every process runs."""
    from saas import cache
    from saas.billing import stripe_client
    from saas.billing.entitlements import Rights
    from saas.database import AppSessions
    from saas.extensions import db
    from saas.messaging.numbers.graph import Graph, pooled_session
    from saas.messaging.numbers.info import NumberInfoClient
    from saas.metering.services import Metering

    app.extensions["stripe"] = stripe_client.build(app.config)
    with app.app_context():
        session = AppSessions(db.session, db.engine)
    caches = cache.Caches(app)
    # Tenants' rights as billing reads them, with no app context: the send service's and metering's.
    rights = Rights(session, caches, app.config)
    metering = Metering(rights_of=rights.for_tenant_id)
    app.extensions["metering"] = metering
    # One pool of kept-alive connections to Graph for every caller in the process, as large as the calls one
    # batch of sends has in flight (a broadcast worker's), so none opens a connection only to drop it.
    graph_session = pooled_session(max(app.config["WHATSAPP_POOL_SIZE"], app.config["SEND_MANY_CONCURRENCY"]))
    service = register_send_service(app, metering, graph_session, session=session, caches=caches, rights=rights)
    from saas.broadcasts import worker as broadcasts

    # The broadcast engine's settings, and its tick in the housekeeping thread.
    broadcasts.install(app)
    from saas.automation import sending as automation

    # Automated replies leave once the transaction that queued them commits; the sweep sends what was left.
    automation.install(app)
    # Reads a live number's info from the Graph API (settings read per call).
    app.extensions["number_info"] = NumberInfoClient(app.config, graph_session)
    app.extensions["graph"] = Graph(app.config, graph_session)
    if app.config["HOUSEKEEPING"]:
        register_housekeeping(app, metering, service)


def register_send_service(app: Flask, metering, graph_session, *, session, caches, rights):
    """The send service, given everything it reads or writes (so it runs with no request or app
    context), installed for ``saas.messaging.outbound.send_service(app)``: ``session`` (AppSessions),
    the app's snapshot ``caches`` and billing's reader of tenants' ``rights`` in that session."""
    from saas.crypto import TokenCipher
    from saas.database import Reconnecting
    from saas.extensions import limiter
    from saas.messaging import outbound
    from saas.messaging.numbers.phone_numbers import SendingNumbers
    from saas.messaging.outbound import accept_journal
    from saas.messaging.outbound.accounts import AccountState
    from saas.messaging.outbound.rules import PairRate, WhatsAppRules
    from saas.messaging.outbound.send import SendService
    from saas.messaging.outbound.settle import recovery_age
    from saas.messaging.templates.message_templates import SendableTemplates
    # Consent is the contacts room's, above messaging: the send service gets its check as a collaborator.
    from saas.contacts.consent.check import RecordedConsent

    # The pair rate lives where the plan rate limits do: Redis with REDIS_URL, else this process's memory.
    rules = WhatsAppRules(SendableTemplates(session, caches),
                          PairRate(limiter.storage, burst=app.config["WHATSAPP_PAIR_RATE_BURST"],
                                   seconds=app.config["WHATSAPP_PAIR_RATE_SECONDS"]))
    # Derived from the send's longest duration when unset; refused (ConfigError) when set shorter.
    after = recovery_age(app.config)
    app.config["RECOVER_SENDS_AFTER_SECONDS"] = after.total_seconds()
    reconnecting = Reconnecting.from_config(app.config)
    app.extensions["reconnecting"] = reconnecting
    service = SendService(
        session=session, numbers=SendingNumbers(session, caches), accounts=AccountState(rights, session, caches),
        transports=build_transports(app, graph_session, TokenCipher(app.config)), metering=metering,
        enqueue=app.extensions["background"].enqueue, rules=rules, reconnecting=reconnecting,
        journal=accept_journal.build(app.config), interrupted_after=after,
        concurrency=app.config["SEND_MANY_CONCURRENCY"], consent=RecordedConsent())
    outbound.install(app, service)
    return service


def build_transports(app: Flask, graph_session, cipher):
    """How messages leave: the sandbox (SANDBOX_LATENCY_MS to rehearse a slow upstream) and WhatsApp's
    Cloud API (the process's Graph pool, live numbers' tokens decrypted with ``cipher``)."""
    from saas.messaging.outbound.cloud_api import CloudApiTransport
    from saas.messaging.outbound.transports import SandboxTransport, Transports

    return Transports(sandbox=SandboxTransport(latency=app.config["SANDBOX_LATENCY_MS"] / 1000),
                      live=CloudApiTransport(app.config, graph_session, cipher=cipher))


def register_housekeeping(app: Flask, metering, service) -> None:
    """What every process runs in its background thread: the usage roll-up, accepts kept while the
    database was away, interrupted sends, usage reports to Stripe, WhatsApp's upkeep, the daily
    reconciliation of Meta's costs."""
    from saas.extensions import db

    background = app.extensions["background"]
    after = service.interrupted_after
    background.every("usage roll-up", 1.0, lambda: metering.roll_up_all(db.session))
    # Accepts kept while the database was away are written as soon as it is back.
    background.every("kept accepts", 1.0, service.write_kept_accepts)
    # Checked twice per threshold: a stuck send is settled within 1.5x the threshold.
    background.every("interrupted sends", after.total_seconds() / 2,
                     lambda: service.recover_interrupted(older_than=after))
    if app.extensions["stripe"] is not None:
        from saas.metering.reporting import UsageReporter

        # Overage to Stripe's meters, one per unit. Bounded per run: this thread also rolls usage up and
        # recovers sends.
        background.every("usage report", app.config["USAGE_REPORT_SECONDS"],
                         lambda: UsageReporter.from_config(app.config, app.extensions["stripe"]).report(budget=10))
    register_whatsapp_housekeeping(app, background)
    from saas.costs.reconcile import DAILY, reconcile_yesterday

    # Yesterday's billable counts against Meta's pricing objects; differences are logged as warnings.
    background.every("Meta cost reconciliation", DAILY, lambda: reconcile_yesterday(db.session))
    from saas.contacts import imports

    # Contact imports whose job was lost, or whose worker died, are queued again.
    background.every("contact imports", 60.0, imports.resume_stalled)
    from saas.orders import notifications

    # Order notifications a crash left pending or half-sent (their Idempotency-Key keeps them single).
    background.every("order notifications", 60.0, lambda: notifications.deliver_due(db.session, service))
    # Started with the first request, so a forked worker starts its own.
    app.before_request(background.start)


def register_event_consumers(app: Flask) -> None:
    """Every area's consumers of domain events (its ``consumers`` module subscribes them: saas.events), and the
    sweep every process runs of what a crash left between a commit and its events' delivery."""
    from saas import events

    events.discover("saas")
    if app.config["HOUSEKEEPING"]:
        app.extensions["background"].every("domain events", app.config["EVENT_SWEEP_SECONDS"], events.sweep)


def register_whatsapp_housekeeping(app: Flask, background) -> None:
    """WhatsApp notifications a crash left unapplied, old ones pruned, and deliveries to tenants' webhooks."""
    from datetime import timedelta

    from saas.messaging.tenant_webhooks import delivery
    from saas.messaging.inbound import notifications

    keep = timedelta(days=app.config["WHATSAPP_NOTIFICATION_RETENTION_DAYS"])

    def sweep():
        notifications.apply_pending()
        notifications.prune(keep=keep)

    background.every("unapplied WhatsApp notifications", app.config["WHATSAPP_SWEEP_SECONDS"], sweep)
    share = app.config["WHATSAPP_SHARE_SECONDS"]
    if share > 0:
        # What another process stored and has not applied yet (its queue is behind), taken by this one. Not
        # when jobs go to RQ: its worker applies them.
        def take_waiting():
            if background.runs_jobs_here():
                notifications.apply_waiting(older_than=timedelta(seconds=share))

        background.every("WhatsApp notifications waiting", share, take_waiting)
    background.every("webhook deliveries", app.config["WEBHOOK_DELIVERY_SECONDS"], delivery.deliver_due)


def register_blueprints(app: Flask) -> None:
    from saas.admin.analytics import bp as admin_analytics_bp
    from saas.admin.plans import bp as admin_plans_bp
    from saas.admin.rates import bp as admin_rates_bp
    from saas.admin.routes import bp as admin_bp
    from saas.api.cloud import bp as cloud_bp
    from saas.api.openapi import bp as openapi_bp
    from saas.api.routes import NESTED as api_nested
    from saas.api.routes import bp as api_bp
    from saas.extensions import csrf
    from saas.portal import routes as portal
    from saas.webhooks.stripe import bp as webhooks_bp
    from saas.webhooks.shops import bp as shop_webhooks_bp
    from saas.webhooks.whatsapp import bp as whatsapp_webhooks_bp

    # API clients authenticate with a bearer key, not a session cookie: no CSRF (nested blueprints too).
    csrf.exempt(api_bp)
    for nested in api_nested:
        csrf.exempt(nested)
    csrf.exempt(cloud_bp)
    # Stripe signs its webhooks; there is no session to forge.
    csrf.exempt(webhooks_bp)
    # WhatsApp signs its webhooks (X-Hub-Signature-256); there is no session to forge.
    csrf.exempt(whatsapp_webhooks_bp)
    # Shops sign their order webhooks (saas.orders.shops); there is no session to forge.
    csrf.exempt(shop_webhooks_bp)
    portal.init_app(app)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_plans_bp)
    app.register_blueprint(admin_rates_bp)
    app.register_blueprint(admin_analytics_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(cloud_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(whatsapp_webhooks_bp)
    app.register_blueprint(shop_webhooks_bp)


def register_errorhandlers(app: Flask) -> None:
    from saas import error_handlers

    error_handlers.init_app(app)
    register_path_guard(app)


# No path parameter of ours (ids, plan codes, Meta's numeric ids) is longer than this.
MAX_PATH_PARAMETER = 200


def register_path_guard(app: Flask) -> None:
    """Every path parameter, on every route, before any view sees it: a value with control characters
    (NUL, which PostgreSQL refuses in text) or longer than any column it could name names nothing: 404."""
    from flask import abort

    from saas.text import problem

    @app.url_value_preprocessor
    def refuse_unnameable(endpoint, values):
        for value in (values or {}).values():
            if isinstance(value, str) and (len(value) > MAX_PATH_PARAMETER or problem(value)):
                abort(404)


def register_security_headers(app: Flask) -> None:
    from saas import security_headers

    security_headers.init_app(app)


def register_commands(app: Flask) -> None:
    from saas import cli

    cli.init_app(app)
