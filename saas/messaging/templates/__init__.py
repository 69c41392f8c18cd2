"""Message templates: created and deleted through Graph, synced from each WABA, kept current by Meta's webhooks."""
