"""Amounts in cents that may hold fractions of a cent, as Stripe's ``unit_amount_decimal`` does.

A plan's overage price is such an amount: 0.5 or 1.25 cents per conversation. It is kept
as a Decimal (never a float), stored exactly (``ExactDecimal``), written for Stripe and for
people by the functions here.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.types import TypeDecorator

# Stripe's unit_amount_decimal: a decimal string in cents with at most 12 decimal places.
CENTS_PLACES = 12
# Stripe refuses unit amounts past eight digits (999,999.99 in a two-decimal currency).
CENTS_MAX = Decimal(99_999_999)


def plain_decimal(value) -> str:
    """``value`` as a plain decimal string, without exponent or trailing zeros: 5, 0.5, 1.25."""
    return format(Decimal(value).normalize(), "f")


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def unit_amount(cents) -> str:
    """A per-unit price in cents as an amount of the currency, exactly, with at least two decimals:
    5 -> "0.05", 0.5 -> "0.005", 1.25 -> "0.0125", 150 -> "1.50"."""
    amount = Decimal(cents) / 100
    return format(amount.quantize(Decimal(1).scaleb(-max(decimal_places(amount), 2))), ",f")


def json_number(value: Decimal | None) -> int | float | None:
    """A JSON number for ``value``: an integer when whole (as before fractions existed), else the nearest float."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class ExactDecimal(TypeDecorator):
    """A Decimal stored exactly: NUMERIC on PostgreSQL, its plain text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int):
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.text_length = precision + 2  # digits, the point and a sign

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.text_length))
        return dialect.type_descriptor(Numeric(self.impl.precision, self.impl.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value)
        return plain_decimal(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        # The same Decimal from either database: 5, not 5.000000000000 (nor 5E+0).
        return None if value is None else Decimal(plain_decimal(value))
