"""The support inbox: one thread per customer and number, replies under WhatsApp's rules, assignment, live updates.

A feature room above messaging and contacts. It learns of inbound messages, statuses and settled sends through
messaging's domain events (``consumers``), and every reply leaves through the send service (metered, WhatsApp's
rules checked). A thread is written so other senders can join it: ``threads.record_outbound(..., author=...)``
takes an automation's or a broadcast's send, and ``threads.log_rule_run`` an automation's decision.
"""
