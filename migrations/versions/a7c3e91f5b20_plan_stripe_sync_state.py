"""Plans remember whether Stripe holds their current terms (the admin's plan list shows it)

Revision ID: a7c3e91f5b20
Revises: de38055424b0
Create Date: 2026-11-26 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'a7c3e91f5b20'
down_revision = 'de38055424b0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_synced_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('stripe_sync_error', sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('stripe_sync_error')
        batch_op.drop_column('stripe_synced_at')
