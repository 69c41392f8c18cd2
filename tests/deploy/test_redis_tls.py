"""Heroku Redis's rediss:// URLs: its certificate is self-signed, so RQ's connection and the rate limits'
storage skip verifying it unless REDIS_TLS_VERIFY says otherwise. Nothing connects here: the connections are
built (redis-py connects lazily) and their options inspected."""
from __future__ import annotations

import ssl

import pytest
from redis.connection import SSLConnection

from saas import create_app
from saas.config import redis_options


@pytest.fixture
def build(monkeypatch, tmp_path):
    def build(url, verify=None):
        monkeypatch.setenv("REDIS_URL", url)
        if verify is None:
            monkeypatch.delenv("REDIS_TLS_VERIFY", raising=False)
        else:
            monkeypatch.setenv("REDIS_TLS_VERIFY", verify)
        app = create_app({"TESTING": True, "HOUSEKEEPING": False,
                          "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "tls.sqlite3")})
        rq_pool = app.extensions["rq_queue"].connection.connection_pool
        limits_pool = app.extensions["rate_store"].primary.storage.connection_pool
        return rq_pool, limits_pool

    return build


def test_a_rediss_url_skips_certificate_checks_for_rq_and_the_rate_limits(build):
    for pool in build("rediss://:secret@127.0.0.1:6380/0"):
        assert pool.connection_class is SSLConnection
        assert "ssl_cert_reqs" in pool.connection_kwargs and pool.connection_kwargs["ssl_cert_reqs"] is None
        assert pool.make_connection().cert_reqs == ssl.CERT_NONE


def test_redis_tls_verify_keeps_certificate_checks(build):
    for pool in build("rediss://:secret@127.0.0.1:6380/0", verify="true"):
        assert pool.connection_class is SSLConnection
        assert "ssl_cert_reqs" not in pool.connection_kwargs
        assert pool.make_connection().cert_reqs == ssl.CERT_REQUIRED


def test_plain_redis_gets_no_tls_options(build):
    for pool in build("redis://127.0.0.1:6379/9"):
        assert pool.connection_class is not SSLConnection
        assert "ssl_cert_reqs" not in pool.connection_kwargs


def test_redis_options():
    assert redis_options("rediss://h:6380", verify=False) == {"ssl_cert_reqs": None}
    assert redis_options("rediss://h:6380", verify=True) == {}
    assert redis_options("redis://h:6379", verify=False) == {}
    assert redis_options(None, verify=False) == {}
