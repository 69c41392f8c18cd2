"""Settings, read from the environment only.

The defaults run the embedded mode (SQLite in ``instance/``, inline jobs, the
sandbox transport). With ``APP_ENV=production`` the app refuses to start
without the secrets it must not invent.
"""
from __future__ import annotations

import secrets
from pathlib import Path

# The readers of one variable live in saas.env; named here too, where every setting is read.
from saas.env import (  # noqa: F401
    ConfigError, env_bool, env_float, env_int, env_pause, env_seconds, env_seconds_list, env_str,
)

STRIPE_API_VERSION = "2026-10-28.endive"


def database_url(raw: str | None, instance_path: str) -> str:
    """Normalise a database URL: Heroku's ``postgres://`` becomes psycopg 3's dialect."""
    if raw is None:
        return "sqlite:///" + str(Path(instance_path) / "saas.sqlite3")
    if raw.startswith("postgres://"):
        raw = "postgresql+psycopg://" + raw[len("postgres://"):]
    elif raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


def local_secret(instance_path: str, name: str, make) -> str:
    """A per-installation secret kept in ``instance/`` for the embedded mode.

    Generated once, so sessions and encrypted tokens survive a restart of
    ``make run``; never used in production, where the environment must say.
    """
    path = Path(instance_path) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def token_keys(raw: str | None) -> list[str]:
    """TOKEN_ENCRYPTION_KEY's Fernet keys, in order: the first encrypts, every one decrypts.

    Several keys, comma-separated, let a new key be introduced while tokens
    encrypted with the old one are still read (``flask tokens rotate``
    re-encrypts them). ConfigError names the entry that is not a Fernet key,
    never its value.
    """
    from cryptography.fernet import Fernet

    if raw is None or raw.strip() == "":
        raise ConfigError("TOKEN_ENCRYPTION_KEY is empty")
    keys = [part.strip() for part in raw.split(",")]
    for position, key in enumerate(keys, start=1):
        where = f"entry {position} of {len(keys)}" if len(keys) > 1 else "its value"
        if not key:
            raise ConfigError(f"TOKEN_ENCRYPTION_KEY: {where} is empty; separate keys with single commas")
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                f"TOKEN_ENCRYPTION_KEY: {where} is not a Fernet key (32 bytes, url-safe base64, 44 characters; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)") from None
    return keys


def redis_options(url: str | None, verify: bool) -> dict:
    """Connection options for redis-py (RQ's connection, the rate limits' storage) for REDIS_URL.

    Heroku Redis serves ``rediss://`` (TLS) with a self-signed certificate: unless
    REDIS_TLS_VERIFY is on, the certificate is not checked (the traffic stays
    encrypted). Plain ``redis://`` needs nothing.
    """
    if url and url.startswith("rediss://") and not verify:
        return {"ssl_cert_reqs": None}
    return {}


def database_connect_args(raw: str | None) -> dict:
    """PostgreSQL gives up connecting after 5 s (a host that vanished would otherwise hold a request
    for the kernel's two minutes), so the send path's retries stay within their time."""
    if raw and raw.startswith(("postgres://", "postgresql")):
        return {"connect_args": {"connect_timeout": 5}}
    return {}


REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "DATABASE_URL", "TOKEN_ENCRYPTION_KEY", "PUBLIC_BASE_URL")


def public_base_url(raw: str | None) -> str | None:
    """PUBLIC_BASE_URL without its trailing slash: an http(s) origin, optionally with a path."""
    if raw is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_BASE_URL must be an http or https URL such as https://relay.example.com, "
                          f"got {raw!r}")
    return raw.rstrip("/")


def trusted_hosts(raw: str | None) -> list[str] | None:
    """TRUSTED_HOSTS: comma-separated host names (``.example.com`` takes its subdomains), or None for any."""
    if raw is None:
        return None
    hosts = [part.strip().lower() for part in raw.split(",") if part.strip()]
    return hosts or None


def load(instance_path: str) -> dict:
    """Build the Flask config mapping from the environment."""
    app_env = env_str("APP_ENV", "development")
    production = app_env == "production"
    if production:
        missing = [name for name in REQUIRED_IN_PRODUCTION if env_str(name) is None]
        if missing:
            raise ConfigError("APP_ENV=production needs " + ", ".join(missing))

    secret_key = env_str("SECRET_KEY") or local_secret(instance_path, "secret_key", lambda: secrets.token_hex(32))
    token_key = env_str("TOKEN_ENCRYPTION_KEY") or local_secret(instance_path, "token_encryption_key", _fernet_key)
    token_keys(token_key)
    redis_url = env_str("REDIS_URL")
    redis_tls = redis_options(redis_url, env_bool("REDIS_TLS_VERIFY", False))
    return {
        "APP_ENV": app_env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url(env_str("DATABASE_URL"), instance_path),
        "REDIS_URL": redis_url,
        # Passed to redis-py by the rate-limit store (saas.rate_store) and RQ's connections (saas.jobs).
        "REDIS_OPTIONS": redis_tls,
        # How long a process may honour a key, plan, subscription or number it has read (seconds).
        "ACCESS_CACHE_SECONDS": env_float("ACCESS_CACHE_SECONDS", 5.0),
        # A request past its plan's rate limit is answered after this pause (at most its Retry-After), so a
        # client that keeps asking costs the server next to nothing while its connections wait. 0: at once.
        "RATE_LIMIT_PAUSE_SECONDS": env_pause("RATE_LIMIT_PAUSE_SECONDS", 1.0),
        # The sandbox answers after this long, to rehearse a real upstream's latency.
        "SANDBOX_LATENCY_MS": env_int("SANDBOX_LATENCY_MS", 0),
        **_recovery_settings(instance_path),
        # Where users reach this app: the only base for absolute links (upgrade_url, examples, Stripe's
        # return URLs) in production. Without it (development), the request's host is used only when trusted.
        "PUBLIC_BASE_URL": public_base_url(env_str("PUBLIC_BASE_URL")),
        # Host headers answered (Flask refuses others with 400); unset: any, and links never use the Host.
        "TRUSTED_HOSTS": trusted_hosts(env_str("TRUSTED_HOSTS")),
        # Strict-Transport-Security on every response (production: the site is served over HTTPS only).
        "HSTS": env_bool("HSTS", production),
        **_mail_settings(),
        **_stripe_settings(),
        **_whatsapp_settings(),
        **_webhook_settings(),
        "TOKEN_ENCRYPTION_KEY": token_key,
        "PAST_DUE_GRACE_DAYS": env_int("PAST_DUE_GRACE_DAYS", 7),
        "LOG_LEVEL": env_str("LOG_LEVEL", "INFO"),
        **_upload_settings(),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(),
        "WTF_CSRF_TIME_LIMIT": None,
        # How many proxies in front of the app set X-Forwarded-For/-Proto (Heroku's router: 1). The
        # client address the throttles count is the one the last trusted proxy saw; 0 trusts none.
        "TRUSTED_PROXIES": env_int("TRUSTED_PROXIES", 0),
        **_sign_in_settings(),
    }


def _mail_settings() -> dict:
    """Outgoing email and the links it carries."""
    return {
        # Outgoing email (saas/mail): smtp://user:pass@host:587?starttls=1, smtps://..., or unset/log:// (logged).
        "MAIL_URL": env_str("MAIL_URL"),
        "MAIL_FROM": env_str("MAIL_FROM", "Relay <no-reply@localhost>"),
        "MAIL_TIMEOUT_SECONDS": env_float("MAIL_TIMEOUT_SECONDS", 10.0),
        "MAIL_RETRIES": env_int("MAIL_RETRIES", 3),
        "MAIL_RETRY_SECONDS": env_float("MAIL_RETRY_SECONDS", 2.0),
        # How long an email-verification link works (seconds; 2 days); a reset link works 1 hour, once.
        "EMAIL_TOKEN_MAX_AGE": env_int("EMAIL_TOKEN_MAX_AGE", 2 * 24 * 3600),
        "PASSWORD_RESET_MAX_AGE": env_int("PASSWORD_RESET_MAX_AGE", 3600),
    }


def _stripe_settings() -> dict:
    """Stripe: the account, the client's timeouts, the meters and how often usage is reported."""
    conversations = env_str("STRIPE_METER_EVENT_NAME", "whatsapp_conversations")
    messages = env_str("STRIPE_MESSAGES_METER_EVENT_NAME", "whatsapp_messages")
    if conversations == messages:
        raise ConfigError("STRIPE_METER_EVENT_NAME and STRIPE_MESSAGES_METER_EVENT_NAME must differ: "
                          "conversations and messages each have their own Billing Meter")
    return {
        "STRIPE_SECRET_KEY": env_str("STRIPE_SECRET_KEY"),
        "STRIPE_WEBHOOK_SECRET": env_str("STRIPE_WEBHOOK_SECRET"),
        "STRIPE_API_BASE": env_str("STRIPE_API_BASE"),
        "STRIPE_API_VERSION": STRIPE_API_VERSION,
        "STRIPE_TIMEOUT_SECONDS": env_float("STRIPE_TIMEOUT_SECONDS", 20.0),
        "STRIPE_MAX_RETRIES": env_int("STRIPE_MAX_RETRIES", 2),
        # The Billing Meters' event names, one meter per priced unit, each shared by the plans pricing it:
        # conversations (the setting's name kept from when it was the only meter), and messages.
        "STRIPE_METER_EVENT_NAME": conversations,
        "STRIPE_MESSAGES_METER_EVENT_NAME": messages,
        # Usage records are reported once their send has surely settled (sends settle within
        # 1.5x RECOVER_SENDS_AFTER_SECONDS), in batches, by every web process or `flask usage report`.
        "USAGE_REPORT_SECONDS": env_float("USAGE_REPORT_SECONDS", 60.0),
    }


def _whatsapp_settings() -> dict:
    """WhatsApp: the app's secrets, Graph calls, the pair rate and the notifications' upkeep."""
    return {
        "WHATSAPP_APP_SECRET": env_str("WHATSAPP_APP_SECRET"),
        "WHATSAPP_VERIFY_TOKEN": env_str("WHATSAPP_VERIFY_TOKEN"),
        "WHATSAPP_GRAPH_URL": env_str("WHATSAPP_GRAPH_URL", "https://graph.facebook.com"),
        "WHATSAPP_API_VERSION": env_str("WHATSAPP_API_VERSION", "v23.0"),
        # Graph API calls give up after these: connecting (a little over a TCP retransmit), then reading.
        "WHATSAPP_CONNECT_TIMEOUT_SECONDS": env_seconds("WHATSAPP_CONNECT_TIMEOUT_SECONDS", 3.05),
        "WHATSAPP_TIMEOUT_SECONDS": env_seconds("WHATSAPP_TIMEOUT_SECONDS", 20.0),
        # Kept-alive connections to Graph per process (a gevent worker runs that many calls at once).
        "WHATSAPP_POOL_SIZE": env_int("WHATSAPP_POOL_SIZE", 256),
        # Calls to WhatsApp one batch of sends (SendService.send_many) has in flight at once.
        "SEND_MANY_CONCURRENCY": env_int("SEND_MANY_CONCURRENCY", 16),
        # A live send is tried again only when nothing can have gone out: a connection never made,
        # or Meta's throughput refusal (130429) with a Retry-After of at most the second setting.
        "WHATSAPP_SEND_RETRIES": env_int("WHATSAPP_SEND_RETRIES", 2),
        "WHATSAPP_RETRY_AFTER_MAX_SECONDS": env_float("WHATSAPP_RETRY_AFTER_MAX_SECONDS", 2.0),
        # Graph calls that are not sends: how GET and DELETE are retried on 429/5xx/a failed connection
        # (at most RETRIES more tries, waiting at most BUDGET seconds in all; POSTs never are).
        "WHATSAPP_RETRIES": env_int("WHATSAPP_RETRIES", 2),
        "WHATSAPP_RETRY_BUDGET_SECONDS": env_float("WHATSAPP_RETRY_BUDGET_SECONDS", 3.0),
        # WhatsApp's pair rate, enforced before Meta's 131056: BURST messages from a number to one
        # contact at once, then one per SECONDS (a moving window of BURST per BURST*SECONDS). 0 turns it off.
        "WHATSAPP_PAIR_RATE_BURST": env_int("WHATSAPP_PAIR_RATE_BURST", 5),
        "WHATSAPP_PAIR_RATE_SECONDS": env_float("WHATSAPP_PAIR_RATE_SECONDS", 6.0),
        # WhatsApp's notifications: how large one may be, how many are applied per transaction,
        # how often each process applies any a crash left unapplied, and how long applied ones are kept.
        "WHATSAPP_WEBHOOK_MAX_BYTES": env_int("WHATSAPP_WEBHOOK_MAX_BYTES", 3 * 1024 * 1024),
        "WHATSAPP_APPLY_BATCH": env_int("WHATSAPP_APPLY_BATCH", 10),
        "WHATSAPP_SWEEP_SECONDS": env_float("WHATSAPP_SWEEP_SECONDS", 30.0),
        "WHATSAPP_SHARE_SECONDS": env_float("WHATSAPP_SHARE_SECONDS", 1.0),
        "WHATSAPP_NOTIFICATION_RETENTION_DAYS": env_int("WHATSAPP_NOTIFICATION_RETENTION_DAYS", 7),
        # Automation's settled runs (saas.automation.retention): how long they are kept.
        "AUTOMATION_RUN_RETENTION_DAYS": env_int("AUTOMATION_RUN_RETENTION_DAYS", 30),
    }


def _upload_settings() -> dict:
    """Request bodies: every route's limit, and the larger ones of the routes that take a file (media, up and
    down through us: WhatsApp's own largest is 100 MB; a CSV of contacts: 20 MB is about 400,000 rows)."""
    return {"MAX_CONTENT_LENGTH": env_int("MAX_REQUEST_BYTES", 256 * 1024),
            "MEDIA_MAX_BYTES": env_int("MEDIA_MAX_BYTES", 16 * 1024 * 1024),
            "CONTACT_IMPORT_MAX_BYTES": env_int("CONTACT_IMPORT_MAX_BYTES", 20 * 1024 * 1024)}


def _webhook_settings() -> dict:
    """Forwarding to tenants' webhooks."""
    return {
        # Forwarding to tenants' webhooks: waits between tries (8 tries over about a day by
        # default, then dead), timeouts, posts at once per process, how often due ones are sent.
        "WEBHOOK_RETRY_SCHEDULE": env_seconds_list("WEBHOOK_RETRY_SCHEDULE", "60,300,900,3600,7200,21600,50400"),
        "WEBHOOK_CONNECT_TIMEOUT": env_float("WEBHOOK_CONNECT_TIMEOUT", 3.0),
        "WEBHOOK_READ_TIMEOUT": env_float("WEBHOOK_READ_TIMEOUT", 10.0),
        "WEBHOOK_CONCURRENCY": env_int("WEBHOOK_CONCURRENCY", 8),
        "WEBHOOK_DELIVERY_SECONDS": env_float("WEBHOOK_DELIVERY_SECONDS", 1.0),
        # Lets tenants' webhooks point at loopback and private addresses (and use http in
        # production): for tests and local work only.
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False),
    }


def _sign_in_settings() -> dict:
    """Signing in and signing up: throttles, two-factor login, password strength."""
    return {
        # Failed logins allowed per account (by the email typed, existing or not) and per client
        # address, as `limits` tiers: past each tier the wait grows. Only failures count.
        "LOGIN_ACCOUNT_LIMITS": env_str("LOGIN_ACCOUNT_LIMITS", "5/15 minutes;10/hour;20/day"),
        "LOGIN_ADDRESS_LIMITS": env_str("LOGIN_ADDRESS_LIMITS", "20/minute;100/hour"),
        # Wrong two-factor codes allowed per user (the login's second step), as tiers like the above.
        "LOGIN_CODE_LIMITS": env_str("LOGIN_CODE_LIMITS", "5/15 minutes;10/hour;20/day"),
        # The code must follow the password within this many seconds.
        "TWO_FACTOR_LOGIN_SECONDS": env_int("TWO_FACTOR_LOGIN_SECONDS", 300),
        # Platform admins must turn on two-factor login before any /admin page opens.
        "ADMIN_REQUIRES_TWO_FACTOR": env_bool("ADMIN_REQUIRES_TWO_FACTOR", True),
        # Signup attempts per client address.
        "SIGNUP_ADDRESS_LIMITS": env_str("SIGNUP_ADDRESS_LIMITS", "5/hour;20/day"),
        # zxcvbn's strength estimate (0-4) a new password must reach.
        "PASSWORD_MIN_SCORE": env_int("PASSWORD_MIN_SCORE", 3),
    }


def _recovery_settings(instance_path: str) -> dict:
    """Housekeeping and surviving a lost database: interrupted sends settled, steps retried, accepts kept."""
    return {
        # The usage roll-up and the recovery of interrupted sends, in every process.
        "HOUSEKEEPING": env_bool("HOUSEKEEPING", True),
        # The inbox's live streams (saas.inbox.live): database reads without Redis, heartbeats, a stream's life.
        **{name: env_seconds(name, default) for name, default in (
            ("INBOX_POLL_SECONDS", 2.0), ("INBOX_HEARTBEAT_SECONDS", 15.0), ("INBOX_STREAM_SECONDS", 25.0))},
        # How often each process delivers domain events a crash left undelivered (saas.events.sweep).
        "EVENT_SWEEP_SECONDS": env_seconds("EVENT_SWEEP_SECONDS", 5.0),
        # A request's domain events are delivered by the process's deliverer thread, many requests' at once,
        # rather than by the request before it answers (saas.events).
        "EVENTS_IN_BACKGROUND": env_bool("EVENTS_IN_BACKGROUND", True),
        # A send still pending this long was interrupted and is settled. Unset: derived from the longest a
        # live send can take (the WhatsApp timeouts, tries and waits below, and the database's retries);
        # set shorter than that, the app refuses to start (saas.messaging.outbound.settle.recovery_age).
        "RECOVER_SENDS_AFTER_SECONDS": env_float("RECOVER_SENDS_AFTER_SECONDS", 0.0) or None,
        # A step of the send path (the accept after WhatsApp answered, the Idempotency-Key lookup, the
        # API key's load) meeting a dropped or unreachable database is tried again on a new connection,
        # at most RETRIES more times within SECONDS; then the request answers 503 (an accept is kept
        # in the accept journal and written when the database is back).
        "DATABASE_RETRIES": env_int("DATABASE_RETRIES", 5),
        "DATABASE_RETRY_SECONDS": env_seconds("DATABASE_RETRY_SECONDS", 5.0),
        # Where accepts the database could not take are kept when there is no Redis (or it fails too).
        "ACCEPT_JOURNAL_DIR": env_str("ACCEPT_JOURNAL_DIR", str(Path(instance_path) / "accept-journal")),
    }


def _engine_options() -> dict:
    """SQLAlchemy's engine options: the connection pool, and the driver's connect arguments."""
    return {
        # No ping per checkout (a round trip on every request): a dropped connection
        # is found by using it, and the send path retries its step once on a new one.
        "pool_pre_ping": env_bool("DATABASE_PRE_PING", False),
        "pool_recycle": 1800,
        # A fixed pool: under load, connections opened past the pool and closed on return
        # (overflow) cost a PostgreSQL backend each time and halved throughput at 64
        # connections; requests wait briefly for a pooled connection instead.
        "pool_size": env_int("DATABASE_POOL_SIZE", 20),
        "max_overflow": env_int("DATABASE_POOL_OVERFLOW", 0),
        **database_connect_args(env_str("DATABASE_URL")),
    }
