"""export range indexes: a tenant's messages, usage records and orders by creation time

Revision ID: e8a3f0c27d51
Revises: a3d7f0c2e815
Create Date: 2026-12-06 20:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e8a3f0c27d51'
down_revision = 'a3d7f0c2e815'
branch_labels = None
depends_on = None

INDEXES = (("ix_messages_tenant_created_at", "messages", ["tenant_id", "created_at", "id"]),
           ("ix_usage_records_tenant_created", "usage_records", ["tenant_id", "created_at", "id"]),
           ("ix_orders_tenant_created", "orders", ["tenant_id", "created_at", "id"]))


def upgrade():
    for name, table, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade():
    for name, table, _ in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
