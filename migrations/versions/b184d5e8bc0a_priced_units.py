"""Priced units: a plan may price messages of given categories instead of conversations, and the usage
ledger counts any metric (one entry per metric a send counts in, instead of fixed message and
conversation columns)

Revision ID: b184d5e8bc0a
Revises: c4d8a2f61b93
Create Date: 2026-12-07 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b184d5e8bc0a'
down_revision = 'c4d8a2f61b93'
branch_labels = None
depends_on = None

# The old ledger's columns as metrics: each old entry becomes up to three.
AS_METRICS = """
INSERT INTO usage_entries (tenant_id, period_start, category, messages, conversations, metric, quantity, created_at)
SELECT tenant_id, period_start, category, 0, 0, 'messages', messages, created_at
FROM usage_entries WHERE metric IS NULL AND messages <> 0
UNION ALL
SELECT tenant_id, period_start, category, 0, 0, 'conversations', conversations, created_at
FROM usage_entries WHERE metric IS NULL AND conversations <> 0
UNION ALL
SELECT tenant_id, period_start, category, 0, 0, 'conversations.' || category, conversations, created_at
FROM usage_entries WHERE metric IS NULL AND conversations <> 0
"""

# Downgrading: entries not rolled up yet go into the counters before the ledger changes shape.
INTO_COUNTERS = """
INSERT INTO usage_counters (tenant_id, period_start, metric, value)
SELECT tenant_id, period_start, metric, SUM(quantity) FROM usage_entries WHERE true
GROUP BY tenant_id, period_start, metric
ON CONFLICT (tenant_id, period_start, metric) DO UPDATE SET value = usage_counters.value + excluded.value
"""


def upgrade():
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_unit', sa.String(length=20), nullable=False,
                                      server_default='conversations'))
        batch_op.add_column(sa.Column('included_messages', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('message_categories', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.alter_column('billing_unit', server_default=None)
        batch_op.alter_column('included_messages', server_default=None)
        batch_op.alter_column('message_categories', server_default=None)

    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metric', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('quantity', sa.Integer(), nullable=True))
    op.execute(AS_METRICS)
    op.execute("DELETE FROM usage_entries WHERE metric IS NULL")
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.drop_column('category')
        batch_op.drop_column('messages')
        batch_op.drop_column('conversations')
        batch_op.alter_column('metric', existing_type=sa.String(length=50), nullable=False)
        batch_op.alter_column('quantity', existing_type=sa.Integer(), nullable=False)


def downgrade():
    op.execute(INTO_COUNTERS)
    op.execute("DELETE FROM usage_entries")
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.drop_column('quantity')
        batch_op.drop_column('metric')
        batch_op.add_column(sa.Column('category', sa.String(length=20), nullable=False, server_default='service'))
        batch_op.add_column(sa.Column('messages', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('conversations', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.alter_column('category', server_default=None)
        batch_op.alter_column('messages', server_default=None)
        batch_op.alter_column('conversations', server_default=None)

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('message_categories')
        batch_op.drop_column('included_messages')
        batch_op.drop_column('billing_unit')
