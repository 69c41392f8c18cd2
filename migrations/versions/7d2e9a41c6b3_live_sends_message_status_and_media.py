"""Live sends: a template send's message_status kept, and the media ids each tenant may read or delete

Revision ID: 7d2e9a41c6b3
Revises: e51d18ecea66
Create Date: 2026-11-26 05:20:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = '7d2e9a41c6b3'
down_revision = 'e51d18ecea66'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_status', sa.String(length=40), nullable=True))

    op.create_table('media',
    sa.Column('media_id', sa.String(length=128), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('phone_number_id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=10), nullable=False),
    sa.Column('mime_type', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['phone_number_id'], ['phone_numbers.id'], name=op.f('fk_media_phone_number_id_phone_numbers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_media_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_id', name=op.f('pk_media'))
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_tenant_id'), ['tenant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_tenant_id'))
    op.drop_table('media')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('message_status')
