"""Order tracking: orders and their state machine, events in (the API, shop webhooks, WhatsApp carts),
one notification per (order, state reached) through the send service, templates mapped per event."""
