"""Verified email: when each user verified their address and when a verification email was last sent

Revision ID: b6e1f0c4d2a7
Revises: b61f0c2e7d35
Create Date: 2026-11-26 02:20:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = 'b6e1f0c4d2a7'
down_revision = 'b61f0c2e7d35'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('verification_sent_at', sa.DateTime(), nullable=True))
    # Accounts made before verification existed keep sending as they did.
    op.execute(sa.text("UPDATE users SET email_verified_at = created_at"))


def downgrade():
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('verification_sent_at')
        batch_op.drop_column('email_verified_at')
