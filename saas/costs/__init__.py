"""What WhatsApp charges for each message: Meta's rate cards and charging rules as dated data, a cost
estimated when a send settles and confirmed by the status webhook's ``pricing`` object, volume tiers from
the ``account_update`` webhook, and the reconciliation of both sides."""
