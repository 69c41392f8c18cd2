"""Inbound webhooks from the systems we depend on (Stripe)."""
