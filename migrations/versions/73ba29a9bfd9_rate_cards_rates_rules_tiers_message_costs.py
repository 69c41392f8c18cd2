"""What WhatsApp charges: Meta's rate cards and rates, charging rules, volume tiers, each message's cost

Revision ID: 73ba29a9bfd9
Revises: 905fc171b505
Create Date: 2026-12-06 17:25:06.727255

"""
from alembic import op
import sqlalchemy as sa

revision = '73ba29a9bfd9'
down_revision = '905fc171b505'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('charging_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('context', sa.String(length=30), nullable=False),
    sa.Column('charged', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charging_rules')),
    sa.UniqueConstraint('effective_from', 'category', 'context', name=op.f('uq_charging_rules_effective_from_category_context'))
    )
    op.create_table('rate_cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('uploaded_by', sa.String(length=255), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_cards')),
    sa.UniqueConstraint('effective_from', name=op.f('uq_rate_cards_effective_from'))
    )
    op.create_table('pricing_tiers',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('waba_id', sa.String(length=64), nullable=False),
    sa.Column('market_key', sa.String(length=60), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('effective_month', sa.String(length=7), nullable=False),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_pricing_tiers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'waba_id', 'market_key', 'category', 'since', name=op.f('pk_pricing_tiers'))
    )
    op.create_table('rates',
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('market', sa.String(length=60), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('rate_micros', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['rate_cards.id'], name=op.f('fk_rates_card_id_rate_cards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('card_id', 'market', 'category', 'tier', name=op.f('pk_rates'))
    )
    op.create_table('message_costs',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.Column('market', sa.String(length=60), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=True),
    sa.Column('context', sa.String(length=30), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('estimated_billable', sa.Boolean(), nullable=True),
    sa.Column('estimated_micros', sa.BigInteger(), nullable=True),
    sa.Column('estimated_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_billable', sa.Boolean(), nullable=True),
    sa.Column('confirmed_category', sa.String(length=40), nullable=True),
    sa.Column('confirmed_type', sa.String(length=30), nullable=True),
    sa.Column('confirmed_micros', sa.BigInteger(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('difference_micros', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['card_id'], ['rate_cards.id'], name=op.f('fk_message_costs_card_id_rate_cards'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_costs_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_message_costs_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'message_id', name=op.f('pk_message_costs'))
    )
    with op.batch_alter_table('message_costs', schema=None) as batch_op:
        batch_op.create_index('ix_message_costs_sent', ['sent_at'], unique=False)
        batch_op.create_index('ix_message_costs_tenant_sent', ['tenant_id', 'sent_at'], unique=False)



def downgrade():
    with op.batch_alter_table('message_costs', schema=None) as batch_op:
        batch_op.drop_index('ix_message_costs_tenant_sent')
        batch_op.drop_index('ix_message_costs_sent')

    op.drop_table('message_costs')
    op.drop_table('rates')
    op.drop_table('pricing_tiers')
    op.drop_table('rate_cards')
    op.drop_table('charging_rules')
