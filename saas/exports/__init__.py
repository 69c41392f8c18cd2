"""Exports sold as ``analytics_export``: messages with status, category and cost, daily usage, the usage
records behind an invoice's overage line, and orders, over a time range, as CSV in flat memory."""
