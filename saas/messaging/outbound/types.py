"""WhatsApp's message types in one table: what each needs from the plan and how it is shaped.

The API's schemas and the send path's feature gate both read this table, so a
new type is added here once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageType:
    name: str
    feature: str             # the plan feature a send of this type needs
    media: bool = False      # sent by media id or link
    caption: bool = False    # a media type that takes a caption
    template: bool = False   # a pre-approved template (opens a business-initiated window)


TYPES = {t.name: t for t in (
    MessageType("text", "text"),
    MessageType("reaction", "text"),
    MessageType("location", "text"),
    MessageType("contacts", "text"),
    MessageType("template", "template", template=True),
    MessageType("image", "media", media=True, caption=True),
    MessageType("video", "media", media=True, caption=True),
    MessageType("document", "media", media=True, caption=True),
    MessageType("audio", "media", media=True),
    MessageType("sticker", "media", media=True),
    MessageType("interactive", "interactive"),
)}

NAMES = tuple(TYPES)
MEDIA = tuple(name for name, t in TYPES.items() if t.media)
UNCAPTIONED_MEDIA = tuple(name for name, t in TYPES.items() if t.media and not t.caption)
