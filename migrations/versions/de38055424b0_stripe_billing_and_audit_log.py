"""Billing with Stripe: plans' meters and trials, the event ledger's details, overage decisions, the audit log

Revision ID: de38055424b0
Revises: 4b1d9e7c2a10
Create Date: 2026-11-26 01:00:19.868882

"""
import sqlalchemy as sa
from alembic import op

revision = 'de38055424b0'
down_revision = '4b1d9e7c2a10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_audit_events_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_audit_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_created', ['created_at'], unique=False)
        batch_op.create_index('ix_audit_events_tenant_created', ['tenant_id', 'created_at'], unique=False)

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_meter_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('trial_days', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('object_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('outcome', sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f('ix_stripe_events_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_stripe_events_tenant_id_tenants'), 'tenants', ['tenant_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_price_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_metered_item_id', sa.String(length=255), nullable=True))

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overage', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))



def downgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('overage')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('stripe_metered_item_id')
        batch_op.drop_column('stripe_price_id')

    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_stripe_events_tenant_id_tenants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_stripe_events_tenant_id'))
        batch_op.drop_column('outcome')
        batch_op.drop_column('attempts')
        batch_op.drop_column('payload')
        batch_op.drop_column('object_id')
        batch_op.drop_column('tenant_id')

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('trial_days')
        batch_op.drop_column('stripe_meter_id')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_tenant_created')
        batch_op.drop_index('ix_audit_events_created')

    op.drop_table('audit_events')
