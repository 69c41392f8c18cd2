"""Messages keep the conversation category they were metered in, and a tenant's callback data too long
to travel to WhatsApp beside our message id

Revision ID: 3f8a2c61d9e4
Revises: c4a7e2d95b18
Create Date: 2026-12-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = '3f8a2c61d9e4'
down_revision = 'c4a7e2d95b18'
branch_labels = None
depends_on = None


def upgrade():
    # Both nullable and without defaults: on PostgreSQL adding them rewrites nothing.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('callback_data', sa.String(length=512), nullable=True))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('callback_data')
        batch_op.drop_column('category')
