"""Analytics: each day's figures per tenant and number (sent, delivered, read, failed with WhatsApp's codes,
conversations, Meta's cost by category and market), kept as daily roll-ups from the domain events and
rebuilt from the message rows with ``flask analytics rebuild``; the pages and the API read only the roll-ups."""
