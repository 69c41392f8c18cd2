"""Usage ledger rolled up into counters, 64-bit ids for rows that grow with traffic, pending-send index

Revision ID: 4b1d9e7c2a10
Revises: 8c8f02a03e27
Create Date: 2026-11-25 23:59:00

"""
import sqlalchemy as sa
from alembic import op

revision = '4b1d9e7c2a10'
down_revision = '8c8f02a03e27'
branch_labels = None
depends_on = None

# (table, column) pairs widened to BIGINT on PostgreSQL. SQLite's INTEGER is already 64-bit.
WIDENED = [
    ('conversations', 'id'),
    ('messages', 'id'),
    ('messages', 'conversation_id'),
    ('usage_counters', 'id'),
    ('usage_records', 'id'),
    ('webhook_deliveries', 'id'),
]


def upgrade():
    op.create_table('usage_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.DateTime(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('conversations', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_usage_entries_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_entries'))
    )
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.create_index('ix_usage_entries_tenant_period', ['tenant_id', 'period_start'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('period_start', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_messages_pending', ['created_at'], unique=False,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))

    # A usage record now names what it billed ("conversation:<id>") instead of pointing at a message.
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=100), nullable=False, server_default=''))
    op.execute("UPDATE usage_records SET subject = COALESCE((SELECT 'conversation:' || m.conversation_id "
               "FROM messages m WHERE m.id = usage_records.message_id AND m.conversation_id IS NOT NULL), '')")
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.alter_column('subject', server_default=None)
        batch_op.drop_index(batch_op.f('ix_usage_records_message_id'))
        batch_op.drop_constraint(batch_op.f('fk_usage_records_message_id_messages'), type_='foreignkey')
        batch_op.drop_column('message_id')
        batch_op.create_index('ix_usage_records_subject', ['tenant_id', 'subject'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        for table, column in WIDENED:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table, column in reversed(WIDENED):
            op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_subject')
        batch_op.add_column(sa.Column('message_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_usage_records_message_id_messages'), 'messages',
                                    ['message_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index(batch_op.f('ix_usage_records_message_id'), ['message_id'], unique=False)
        batch_op.drop_column('subject')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_pending', postgresql_where=sa.text("status = 'pending'"),
                            sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_column('period_start')
    # Entries not rolled up yet go into the counters before the ledger goes.
    op.execute("INSERT INTO usage_counters (tenant_id, period_start, metric, value) "
               "SELECT tenant_id, period_start, 'messages', 0 FROM usage_entries GROUP BY tenant_id, period_start "
               "ON CONFLICT (tenant_id, period_start, metric) DO NOTHING")
    op.execute("UPDATE usage_counters SET value = value + COALESCE((SELECT SUM(e.messages) FROM usage_entries e "
               "WHERE e.tenant_id = usage_counters.tenant_id AND e.period_start = usage_counters.period_start), 0) "
               "WHERE metric = 'messages'")
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_entries_tenant_period')
    op.drop_table('usage_entries')
