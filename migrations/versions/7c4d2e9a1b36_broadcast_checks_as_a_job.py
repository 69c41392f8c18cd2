"""Broadcasts: a large audience's check runs as a job, with a worker's lease and its progress

Revision ID: 7c4d2e9a1b36
Revises: 1951b1a27314
Create Date: 2026-12-06 17:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c4d2e9a1b36'
down_revision = '1951b1a27314'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('check_lease_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('check_progress', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_column('check_progress')
        batch_op.drop_column('check_lease_until')
