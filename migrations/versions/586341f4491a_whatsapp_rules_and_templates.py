"""WhatsApp's rules and templates: message templates per WABA, each number's messaging limit tier,
business-initiated sends, and the indexes the customer-service window and the messaging limit read

Revision ID: 586341f4491a
Revises: 5e0c7a2d9b41
Create Date: 2026-11-26 01:27:32.112291

"""
import sqlalchemy as sa
from alembic import op

revision = '586341f4491a'
down_revision = '5e0c7a2d9b41'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('waba_id', sa.String(length=64), nullable=False),
    sa.Column('meta_id', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('language', sa.String(length=15), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('quality_score', sa.String(length=20), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_templates_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_templates')),
    sa.UniqueConstraint('tenant_id', 'waba_id', 'name', 'language', name=op.f('uq_templates_tenant_id_waba_id_name_language'))
    )
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.create_index('ix_templates_waba_meta', ['waba_id', 'meta_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('business_initiated', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.create_index('ix_messages_contact', ['tenant_id', 'phone_number_id', 'wa_id', 'direction', 'created_at'], unique=False)
        batch_op.create_index('ix_messages_reach', ['tenant_id', 'phone_number_id', 'created_at', 'wa_id'], unique=False, postgresql_where=sa.text('business_initiated'), sqlite_where=sa.text('business_initiated'))

    # phone_numbers.messaging_limit_tier comes with the live numbers' migration (5e0c7a2d9b41).
    # Sandbox numbers follow a new live number's limit.
    op.execute("UPDATE phone_numbers SET messaging_limit_tier = 'TIER_250' WHERE mode = 'sandbox'")


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_reach', postgresql_where=sa.text('business_initiated'), sqlite_where=sa.text('business_initiated'))
        batch_op.drop_index('ix_messages_contact')
        batch_op.drop_column('business_initiated')

    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.drop_index('ix_templates_waba_meta')

    op.drop_table('templates')
