"""Automation: rules that answer inbound messages for the tenant, business hours, and replay of a rule.

A feature room beside the inbox. Its consumer of ``message.received`` (``consumers``) matches the tenant's
rules in the delivering transaction, does what needs no send there (labels, assignment, consent, a forwarded
event) and writes each reply as a run (``models.Run``, unique per rule and inbound message); the runs are
sent after that transaction commits, through the send service (``sending``). Loop guards (``guards``) keep
automations from answering automations. ``replay`` runs one rule over the last 30 days of inbound messages.
"""
