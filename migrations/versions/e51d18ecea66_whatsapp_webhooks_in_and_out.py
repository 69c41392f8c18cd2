"""WhatsApp's webhooks in and the tenant's out: the notification ledger, customer-service windows, pricing kept on messages, number quality, signed deliveries with attempts

Revision ID: e51d18ecea66
Revises: 3f1c2b7d9e55
Create Date: 2026-11-26 01:29:43.057761

"""
import sqlalchemy as sa
from alembic import op

revision = 'e51d18ecea66'
down_revision = '3f1c2b7d9e55'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('whatsapp_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('processed_at', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('outcome', sa.String(length=500), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_notifications'))
    )
    with op.batch_alter_table('whatsapp_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_whatsapp_notifications_processed', ['processed_at'], unique=False)
        batch_op.create_index('ix_whatsapp_notifications_unprocessed', ['received_at'], unique=False, postgresql_where=sa.text('processed_at IS NULL'), sqlite_where=sa.text('processed_at IS NULL'))

    op.create_table('service_windows',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('phone_number_id', sa.Integer(), nullable=False),
    sa.Column('contact', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('last_inbound_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['phone_number_id'], ['phone_numbers.id'], name=op.f('fk_service_windows_phone_number_id_phone_numbers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_service_windows_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number_id', 'contact', name=op.f('pk_service_windows'))
    )
    op.create_table('webhook_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_webhook_attempts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_attempts_delivery', ['tenant_id', 'delivery_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_details', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('wa_conversation_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('wa_conversation_origin', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('wa_conversation_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('pricing_billable', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('pricing_model', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('pricing_category', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('pricing_type', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('raw_message', sa.JSON(), nullable=True))

    # phone_numbers.quality_rating and messaging_limit_tier come with the live numbers' migration.

    # Nothing wrote these two tables before this revision, and a row without a
    # signing secret could not be delivered: start them empty.
    op.execute("DELETE FROM webhook_deliveries")
    op.execute("DELETE FROM webhook_endpoints")
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_key', sa.String(length=200), nullable=False))
        batch_op.add_column(sa.Column('sequence_key', sa.String(length=160), nullable=False))
        batch_op.add_column(sa.Column('wa_message_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('state', sa.String(length=10), server_default='pending', nullable=False))
        batch_op.add_column(sa.Column('last_attempt_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('dead_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('replay_of', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_due'))
        batch_op.create_index('ix_webhook_deliveries_due', ['next_attempt_at'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_webhook_deliveries_sequence', ['tenant_id', 'endpoint_id', 'sequence_key', 'id'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_webhook_deliveries_tenant_created', ['tenant_id', 'id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_webhook_deliveries_tenant_id_endpoint_id_event_key'), ['tenant_id', 'endpoint_id', 'event_key'])
        batch_op.create_foreign_key(batch_op.f('fk_webhook_deliveries_replay_of_webhook_deliveries'), 'webhook_deliveries', ['replay_of'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signing_secret_encrypted', sa.Text(), nullable=False))
        batch_op.add_column(sa.Column('secret_hint', sa.String(length=16), nullable=False))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=False))
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_tenant_id'))
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_tenant_id'), ['tenant_id'], unique=True)
        batch_op.drop_column('signing_secret')


def downgrade():
    op.execute("DELETE FROM webhook_attempts")
    op.execute("DELETE FROM webhook_deliveries")
    op.execute("DELETE FROM webhook_endpoints")
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signing_secret', sa.VARCHAR(length=128), nullable=False, server_default=''))
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_tenant_id'))
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_tenant_id'), ['tenant_id'], unique=False)
        batch_op.drop_column('updated_at')
        batch_op.drop_column('secret_hint')
        batch_op.drop_column('signing_secret_encrypted')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_webhook_deliveries_replay_of_webhook_deliveries'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_webhook_deliveries_tenant_id_endpoint_id_event_key'), type_='unique')
        batch_op.drop_index('ix_webhook_deliveries_tenant_created')
        batch_op.drop_index('ix_webhook_deliveries_sequence', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.drop_index('ix_webhook_deliveries_due', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_due'), ['delivered_at', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_tenant_id'), ['tenant_id'], unique=False)
        batch_op.drop_column('replay_of')
        batch_op.drop_column('dead_at')
        batch_op.drop_column('last_attempt_at')
        batch_op.drop_column('state')
        batch_op.drop_column('wa_message_id')
        batch_op.drop_column('sequence_key')
        batch_op.drop_column('event_key')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('raw_message')
        batch_op.drop_column('pricing_type')
        batch_op.drop_column('pricing_category')
        batch_op.drop_column('pricing_model')
        batch_op.drop_column('pricing_billable')
        batch_op.drop_column('wa_conversation_expires_at')
        batch_op.drop_column('wa_conversation_origin')
        batch_op.drop_column('wa_conversation_id')
        batch_op.drop_column('error_details')

    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_attempts_delivery')

    op.drop_table('webhook_attempts')
    op.drop_table('service_windows')
    with op.batch_alter_table('whatsapp_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_whatsapp_notifications_unprocessed', postgresql_where=sa.text('processed_at IS NULL'), sqlite_where=sa.text('processed_at IS NULL'))
        batch_op.drop_index('ix_whatsapp_notifications_processed')

    op.drop_table('whatsapp_notifications')
