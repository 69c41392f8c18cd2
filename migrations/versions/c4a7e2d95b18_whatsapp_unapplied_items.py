"""WhatsApp notification items that could not be applied, each kept with its error to be tried again

Revision ID: c4a7e2d95b18
Revises: 7d2e9a41c6b3
Create Date: 2026-12-06 07:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = 'c4a7e2d95b18'
down_revision = '7d2e9a41c6b3'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OPEN = sa.text('applied_at IS NULL')


def upgrade():
    op.create_table('whatsapp_unapplied_items',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('notification_id', BIG_ID, nullable=True),
    sa.Column('location', sa.String(length=120), nullable=False),
    sa.Column('field', sa.String(length=80), nullable=False),
    sa.Column('wa_message_id', sa.String(length=128), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('failed_at', sa.DateTime(), nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=True),
    sa.Column('applied_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['notification_id'], ['whatsapp_notifications.id'], name=op.f('fk_whatsapp_unapplied_items_notification_id_whatsapp_notifications'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_unapplied_items')),
    sa.UniqueConstraint('notification_id', 'location', name=op.f('uq_whatsapp_unapplied_items_notification_id_location'))
    )
    with op.batch_alter_table('whatsapp_unapplied_items', schema=None) as batch_op:
        batch_op.create_index('ix_whatsapp_unapplied_items_due', ['next_try_at'], unique=False, postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.create_index('ix_whatsapp_unapplied_items_open', ['failed_at'], unique=False, postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.create_index('ix_whatsapp_unapplied_items_applied', ['applied_at'], unique=False)


def downgrade():
    with op.batch_alter_table('whatsapp_unapplied_items', schema=None) as batch_op:
        batch_op.drop_index('ix_whatsapp_unapplied_items_applied')
        batch_op.drop_index('ix_whatsapp_unapplied_items_open', postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_index('ix_whatsapp_unapplied_items_due', postgresql_where=OPEN, sqlite_where=OPEN)
    op.drop_table('whatsapp_unapplied_items')
