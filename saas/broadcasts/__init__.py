"""Broadcasts: one approved template to an audience of a tenant's contacts, each recipient at most once.

The check before sending (saas.broadcasts.check) says who would get it and who is dropped and why;
starting freezes the recipients, one row each with its variables (saas.broadcasts.freeze); workers
claim batches of them and send through the send service (saas.broadcasts.engine), paced per number
and fair between tenants; a crash at any point resumes without a second send to anyone
(saas.broadcasts.recovery); WhatsApp's statuses settle each outcome (saas.broadcasts.consumers).
"""
