"""WhatsApp's webhooks: intake, notifications applied item by item, statuses and inbound messages."""
