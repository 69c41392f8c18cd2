"""Consent: a contact's opt-in or opt-out of marketing per number, with its proof and history.

Recorded by the tenant (the API, the portal, a CSV import with opt-in: saas.contacts.consent.services,
records), and by the contact through WhatsApp: a keyword sent alone (STOP, İPTAL ...: keywords), Meta's
user_preferences webhook and error 131050 (consumers). Read by the send service through its consent
port (check): a marketing template needs the contact's opt-in for the sending number and is refused
after an opt-out, unless the tenant's plan leaves consent to the tenant (then only an opt-out refuses).
"""
