"""The tenant's own webhooks: endpoints, what is forwarded to them, and signed delivery with retries."""
