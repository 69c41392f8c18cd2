"""Contacts: the people a tenant messages, keyed by WhatsApp id or Meta's user id, with their
attributes, labels and consent (an opt-in or opt-out per contact and number, with its history).

A feature room above messaging: it learns of inbound messages, statuses and preference changes
through messaging's domain events, and gives the send service its consent check as a collaborator.
"""
