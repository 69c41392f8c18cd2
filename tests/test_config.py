"""saas.config: settings read from the environment only."""
from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from saas import config
from saas.config import ConfigError, database_url, load

SETTINGS = ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "TOKEN_ENCRYPTION_KEY", "PAST_DUE_GRACE_DAYS",
            "MAX_REQUEST_BYTES", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "LOG_LEVEL",
            "PUBLIC_BASE_URL", "TRUSTED_HOSTS", "HSTS", "STRIPE_METER_EVENT_NAME", "STRIPE_MESSAGES_METER_EVENT_NAME")


@pytest.fixture
def env(monkeypatch):
    """A clean environment for the settings under test; monkeypatch restores it afterwards."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def instance(tmp_path):
    return tmp_path / "instance"


def production(env, **values):
    env.setenv("APP_ENV", "production")
    for name, value in values.items():
        env.setenv(name, value)


# -- database_url --------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("postgres://user:pw@db.example.com:5432/app", "postgresql+psycopg://user:pw@db.example.com:5432/app"),
    ("postgresql://user:pw@db.example.com/app?sslmode=require",
     "postgresql+psycopg://user:pw@db.example.com/app?sslmode=require"),
    ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
])
def test_database_url_rewrites_postgres_schemes_to_psycopg3(raw, expected):
    assert database_url(raw, "/unused") == expected


@pytest.mark.parametrize("raw", [
    "postgresql+psycopg://user@db.example.com/app",
    "sqlite:////var/data/app.sqlite3",
    "mysql://user@db.example.com/app",
])
def test_database_url_leaves_other_urls_alone(raw):
    assert database_url(raw, "/unused") == raw


def test_database_url_rewrites_only_the_scheme(tmp_path):
    raw = "postgres://user:postgres://@db.example.com/postgres"
    assert database_url(raw, str(tmp_path)) == "postgresql+psycopg://user:postgres://@db.example.com/postgres"


def test_database_url_defaults_to_a_sqlite_file_in_the_instance_path(tmp_path):
    assert database_url(None, str(tmp_path)) == f"sqlite:///{tmp_path}/saas.sqlite3"


def test_load_without_database_url_uses_the_instance_sqlite_file(env, instance):
    assert load(str(instance))["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance}/saas.sqlite3"


def test_load_treats_a_blank_database_url_as_unset(env, instance):
    env.setenv("DATABASE_URL", "   ")
    assert load(str(instance))["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance}/saas.sqlite3"


def test_load_normalises_database_url_from_the_environment(env, instance):
    env.setenv("DATABASE_URL", " postgres://user@db.example.com/app ")
    assert load(str(instance))["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://user@db.example.com/app"


# -- production --------------------------------------------------------------------

def test_production_without_any_required_secret_names_them_all(env, instance):
    production(env)
    with pytest.raises(ConfigError) as error:
        load(str(instance))
    message = str(error.value)
    for name in ("SECRET_KEY", "DATABASE_URL", "TOKEN_ENCRYPTION_KEY", "PUBLIC_BASE_URL"):
        assert name in message
    assert not instance.exists(), "production must not invent secrets in the instance folder"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "TOKEN_ENCRYPTION_KEY", "PUBLIC_BASE_URL"])
def test_production_names_exactly_the_missing_setting(env, instance, missing):
    values = {"SECRET_KEY": "s" * 64, "DATABASE_URL": "postgres://user@db.example.com/app",
              "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(), "PUBLIC_BASE_URL": "https://relay.example.com"}
    values.pop(missing)
    production(env, **values)
    with pytest.raises(ConfigError) as error:
        load(str(instance))
    assert str(error.value) == f"APP_ENV=production needs {missing}"
    assert not instance.exists()


def test_production_treats_a_blank_secret_as_missing(env, instance):
    production(env, SECRET_KEY="   ", DATABASE_URL="postgres://user@db.example.com/app", PUBLIC_BASE_URL="https://a.example",
               TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(str(instance))


def test_production_with_every_secret_loads_and_secures_cookies(env, instance):
    token_key = Fernet.generate_key().decode()
    production(env, SECRET_KEY="s" * 64, DATABASE_URL="postgres://user@db.example.com/app",
               PUBLIC_BASE_URL="https://relay.example.com/",
               TOKEN_ENCRYPTION_KEY=token_key)
    settings = load(str(instance))
    assert settings["APP_ENV"] == "production"
    assert settings["SECRET_KEY"] == "s" * 64
    assert settings["TOKEN_ENCRYPTION_KEY"] == token_key
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://user@db.example.com/app"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["REMEMBER_COOKIE_SECURE"] is True
    assert settings["PUBLIC_BASE_URL"] == "https://relay.example.com"
    assert settings["HSTS"] is True
    assert settings["PREFERRED_URL_SCHEME"] == "https"
    assert not instance.exists()


# -- malformed numbers ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["seven", "7.5", "7 days", "0x7"])
def test_bad_past_due_grace_days_raises_config_error(env, instance, value):
    env.setenv("PAST_DUE_GRACE_DAYS", value)
    with pytest.raises(ConfigError) as error:
        load(str(instance))
    assert "PAST_DUE_GRACE_DAYS" in str(error.value)
    assert repr(value) in str(error.value)


def test_past_due_grace_days_is_read_as_a_whole_number(env, instance):
    assert load(str(instance))["PAST_DUE_GRACE_DAYS"] == 7
    env.setenv("PAST_DUE_GRACE_DAYS", " 3 ")
    assert load(str(instance))["PAST_DUE_GRACE_DAYS"] == 3


@pytest.mark.parametrize("value", ["-1", "61", "nan", "soon"])
def test_a_rate_limit_pause_outside_0_to_60_seconds_raises_config_error(env, instance, value):
    env.setenv("RATE_LIMIT_PAUSE_SECONDS", value)
    with pytest.raises(ConfigError, match="RATE_LIMIT_PAUSE_SECONDS"):
        load(str(instance))


def test_the_rate_limit_pause_is_a_second_unless_set(env, instance):
    assert load(str(instance))["RATE_LIMIT_PAUSE_SECONDS"] == 1.0
    env.setenv("RATE_LIMIT_PAUSE_SECONDS", "0")
    assert load(str(instance))["RATE_LIMIT_PAUSE_SECONDS"] == 0.0


def test_bad_max_request_bytes_raises_config_error(env, instance):
    env.setenv("MAX_REQUEST_BYTES", "lots")
    with pytest.raises(ConfigError, match="MAX_REQUEST_BYTES"):
        load(str(instance))


@pytest.mark.parametrize("raw, expected", [("1", True), ("yes", True), ("ON", True), ("0", False),
                                           ("false", False), ("off", False)])
def test_env_bool_reads_the_usual_spellings(env, raw, expected):
    env.setenv("SOME_FLAG", raw)
    assert config.env_bool("SOME_FLAG", not expected) is expected


def test_env_bool_refuses_anything_else(env):
    env.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ConfigError, match="SOME_FLAG"):
        config.env_bool("SOME_FLAG", False)


# -- development ---------------------------------------------------------------------

def test_development_generates_a_secret_key_once_and_reuses_it(env, instance):
    first = load(str(instance))
    secret_file = instance / "secret_key"
    assert secret_file.read_text() == first["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) == 64
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    second = load(str(instance))
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert secret_file.read_text() == first["SECRET_KEY"]


def test_development_generates_a_usable_token_encryption_key_once(env, instance):
    first = load(str(instance))
    key = first["TOKEN_ENCRYPTION_KEY"]
    assert (instance / "token_encryption_key").read_text() == key
    assert stat.S_IMODE((instance / "token_encryption_key").stat().st_mode) == 0o600
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"token")) == b"token"
    assert load(str(instance))["TOKEN_ENCRYPTION_KEY"] == key


def test_each_instance_folder_gets_its_own_secret(env, tmp_path):
    assert load(str(tmp_path / "a"))["SECRET_KEY"] != load(str(tmp_path / "b"))["SECRET_KEY"]


def test_a_secret_key_from_the_environment_wins_and_nothing_is_written(env, instance):
    env.setenv("SECRET_KEY", "from-the-environment")
    env.setenv("TOKEN_ENCRYPTION_KEY", Fernet.generate_key().decode())
    settings = load(str(instance))
    assert settings["SECRET_KEY"] == "from-the-environment"
    assert not (instance / "secret_key").exists()
    assert not (instance / "token_encryption_key").exists()


def test_development_defaults(env, instance):
    settings = load(str(instance))
    assert settings["APP_ENV"] == "development"
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert settings["PREFERRED_URL_SCHEME"] == "http"
    assert settings["REDIS_URL"] is None
    assert settings["STRIPE_SECRET_KEY"] is None
    assert settings["MAX_CONTENT_LENGTH"] == 256 * 1024


@pytest.mark.parametrize("raw", ["relay.example.com", "ftp://relay.example.com", "https://", "https://a.example/?x=1"])
def test_public_base_url_must_be_an_http_url(env, instance, raw):
    env.setenv("PUBLIC_BASE_URL", raw)
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load(str(instance))


def test_trusted_hosts_is_a_comma_separated_list(env, instance):
    env.setenv("TRUSTED_HOSTS", " relay.example.com, .relay.example.com ,")
    settings = load(str(instance))
    assert settings["TRUSTED_HOSTS"] == ["relay.example.com", ".relay.example.com"]
    assert settings["HSTS"] is False


def test_each_priced_unit_has_its_own_meter_event_name(env, instance):
    settings = load(str(instance))
    assert (settings["STRIPE_METER_EVENT_NAME"], settings["STRIPE_MESSAGES_METER_EVENT_NAME"]) == (
        "whatsapp_conversations", "whatsapp_messages")
    env.setenv("STRIPE_METER_EVENT_NAME", "relay_conversations")
    env.setenv("STRIPE_MESSAGES_METER_EVENT_NAME", " relay_messages ")
    settings = load(str(instance))
    assert (settings["STRIPE_METER_EVENT_NAME"], settings["STRIPE_MESSAGES_METER_EVENT_NAME"]) == (
        "relay_conversations", "relay_messages")


def test_one_event_name_for_both_meters_is_refused(env, instance):
    env.setenv("STRIPE_MESSAGES_METER_EVENT_NAME", "whatsapp_conversations")
    with pytest.raises(ConfigError, match="STRIPE_METER_EVENT_NAME and STRIPE_MESSAGES_METER_EVENT_NAME must differ"):
        load(str(instance))
