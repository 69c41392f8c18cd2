"""Analytics: daily roll-ups per tenant, number, category, market and currency; failures per code; each
message's share as last added

Revision ID: a3d7f0c2e815
Revises: 7c4d2e9a1b36
Create Date: 2026-12-06 20:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3d7f0c2e815'
down_revision = '7c4d2e9a1b36'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
COUNTS = ('sent', 'delivered', 'read', 'failed', 'conversations', 'confirmed')
AMOUNTS = ('estimated_micros', 'confirmed_micros', 'cost_micros')


def _tenant():
    return sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenants.id', ondelete='CASCADE'), nullable=False)


def upgrade():
    op.create_table(
        'analytics_daily', _tenant(),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('phone_number_id', sa.Integer(), sa.ForeignKey('phone_numbers.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('market', sa.String(length=60), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        *(sa.Column(name, sa.Integer(), server_default='0', nullable=False) for name in COUNTS),
        *(sa.Column(name, sa.BigInteger(), server_default='0', nullable=False) for name in AMOUNTS),
        sa.PrimaryKeyConstraint('tenant_id', 'day', 'phone_number_id', 'category', 'market', 'currency'))
    op.create_index('ix_analytics_daily_day', 'analytics_daily', ['day'])
    op.create_table(
        'analytics_daily_failures', _tenant(),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('phone_number_id', sa.Integer(), sa.ForeignKey('phone_numbers.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('error_code', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'day', 'phone_number_id', 'error_code'))
    op.create_index('ix_analytics_daily_failures_day', 'analytics_daily_failures', ['day'])
    op.create_table(
        'analytics_counted', _tenant(),
        sa.Column('message_id', BIG_ID, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('phone_number_id', sa.Integer(), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('market', sa.String(length=60), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        *(sa.Column(name, sa.SmallInteger(), nullable=False) for name in COUNTS),
        sa.Column('error_code', sa.Integer(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in AMOUNTS),
        sa.PrimaryKeyConstraint('tenant_id', 'message_id'))
    op.create_index('ix_analytics_counted_day', 'analytics_counted', ['day'])


def downgrade():
    op.drop_index('ix_analytics_counted_day', table_name='analytics_counted')
    op.drop_table('analytics_counted')
    op.drop_index('ix_analytics_daily_failures_day', table_name='analytics_daily_failures')
    op.drop_table('analytics_daily_failures')
    op.drop_index('ix_analytics_daily_day', table_name='analytics_daily')
    op.drop_table('analytics_daily')
