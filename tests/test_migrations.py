"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from saas.extensions import db


def test_migrations_and_models_agree(app):
    with app.app_context():
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations differ; run 'flask db migrate': {diff}"


def test_every_table_is_built(app):
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "users", "api_keys", "plans", "subscriptions", "stripe_events", "phone_numbers",
            "messages", "conversations", "webhook_endpoints", "webhook_deliveries", "usage_counters",
            "usage_records", "alembic_version", "whatsapp_notifications", "service_windows",
            "webhook_attempts"} <= tables


def test_every_tenant_owned_table_carries_tenant_id(app):
    owned = ["users", "api_keys", "subscriptions", "phone_numbers", "messages", "conversations",
             "webhook_endpoints", "webhook_deliveries", "usage_counters", "usage_records", "service_windows",
             "webhook_attempts"]
    with app.app_context():
        inspector = inspect(db.engine)
        for table in owned:
            assert "tenant_id" in {c["name"] for c in inspector.get_columns(table)}, table
