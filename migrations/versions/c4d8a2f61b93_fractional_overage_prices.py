"""Overage prices may hold fractions of a cent (Stripe's unit_amount_decimal): plans.overage_cents
becomes NUMERIC(20, 12) on PostgreSQL, and its exact text on SQLite (whose NUMERIC is a float)

Revision ID: c4d8a2f61b93
Revises: 3f8a2c61d9e4
Create Date: 2026-12-06 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'c4d8a2f61b93'
down_revision = '3f8a2c61d9e4'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('plans', schema=None) as batch_op:
            batch_op.alter_column('overage_cents', existing_type=sa.Integer(), type_=sa.String(length=22),
                                  existing_nullable=True)
        # Whole cents as the text the app writes ("5", not "5.0" or a float).
        op.execute("UPDATE plans SET overage_cents = CAST(CAST(overage_cents AS INTEGER) AS TEXT) "
                   "WHERE overage_cents IS NOT NULL")
    else:
        op.alter_column('plans', 'overage_cents', existing_type=sa.Integer(),
                        type_=sa.Numeric(precision=20, scale=12), existing_nullable=True,
                        postgresql_using='overage_cents::numeric(20, 12)')


def downgrade():
    # Whole cents again: a fraction of a cent is rounded up, so no price falls.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("UPDATE plans SET overage_cents = CAST(CAST(overage_cents AS REAL) + 0.999999999999 AS INTEGER) "
                   "WHERE overage_cents IS NOT NULL")
        with op.batch_alter_table('plans', schema=None) as batch_op:
            batch_op.alter_column('overage_cents', existing_type=sa.String(length=22), type_=sa.Integer(),
                                  existing_nullable=True)
    else:
        op.alter_column('plans', 'overage_cents', existing_type=sa.Numeric(precision=20, scale=12),
                        type_=sa.Integer(), existing_nullable=True,
                        postgresql_using='ceil(overage_cents)::integer')
