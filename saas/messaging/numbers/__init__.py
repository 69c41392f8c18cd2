"""A tenant's WhatsApp numbers: connecting them, their info and profile, media, and the Graph session."""
