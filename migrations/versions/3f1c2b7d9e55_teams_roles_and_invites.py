"""Teams: roles owner/admin/developer/billing (``member`` becomes ``developer``) and invitations by email

Revision ID: 3f1c2b7d9e55
Revises: b6e1f0c4d2a7
Create Date: 2026-11-26 02:15:00

"""
import sqlalchemy as sa
from alembic import op

revision = '3f1c2b7d9e55'
down_revision = 'b6e1f0c4d2a7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_invites_tenant_id', 'invites', ['tenant_id'])
    op.execute("UPDATE users SET role = 'developer' WHERE role = 'member'")


def downgrade():
    op.execute("UPDATE users SET role = 'member' WHERE role IN ('developer', 'billing')")
    op.drop_index('ix_invites_tenant_id', table_name='invites')
    op.drop_table('invites')
