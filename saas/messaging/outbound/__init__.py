"""Sending: the send service, WhatsApp's rules, windows, transports (sandbox, Cloud API), accepts and settling."""
