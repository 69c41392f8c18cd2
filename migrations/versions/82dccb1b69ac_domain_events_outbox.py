"""The outbox of domain events: each written in the transaction of the change that caused it, deleted once
every consumer has taken it

Revision ID: 82dccb1b69ac
Revises: b184d5e8bc0a
Create Date: 2026-12-08 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '82dccb1b69ac'
down_revision = 'b184d5e8bc0a'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('domain_events',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('stream', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_try_at', sa.DateTime(), nullable=True),
    sa.Column('owed', sa.String(length=1000), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('dead_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_domain_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_events')),
    # Ids are never reused (SQLite would reuse a deleted highest one): consumers deduplicate on them.
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('domain_events', schema=None) as batch_op:
        batch_op.create_index('ix_domain_events_stream', ['stream', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('domain_events', schema=None) as batch_op:
        batch_op.drop_index('ix_domain_events_stream')
    op.drop_table('domain_events')
