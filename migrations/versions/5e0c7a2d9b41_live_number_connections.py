"""Live numbers: what the Graph API last said of a number, the token's last characters, disconnection

Revision ID: 5e0c7a2d9b41
Revises: a7c3e91f5b20
Create Date: 2026-11-27 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '5e0c7a2d9b41'
down_revision = 'a7c3e91f5b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_last4', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('quality_rating', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('messaging_limit_tier', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('last_checked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_check_error', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('disconnected_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.drop_column('disconnected_at')
        batch_op.drop_column('last_check_error')
        batch_op.drop_column('last_checked_at')
        batch_op.drop_column('messaging_limit_tier')
        batch_op.drop_column('quality_rating')
        batch_op.drop_column('token_last4')
