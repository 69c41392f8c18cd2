"""The tenant's web pages, registered from here: one blueprint per page module, all nested under ``portal``.

Endpoints read ``portal.<module>.<view>`` (``portal.team.index``, ``portal.billing.checkout``); the paths
are the modules' own, with no prefix added here. Page modules import the helpers (access, sessions, forms,
page_context) and never one another, so adding a page touches this list and nothing else.
"""
from __future__ import annotations

from flask import Blueprint, Flask

from saas.extensions import login_manager
from saas.portal import (
    account, analytics, audit, auth, automation, billing, broadcasts, consent, contact_attributes, contact_imports,
    contacts, email_links, exports, home, inbox, inbox_live, keys, message_templates, numbers, orders, page_context,
    sessions, team, twofactor, webhooks,
)

PAGES = (home, auth, email_links, twofactor, account, keys, numbers, message_templates, contacts, contact_imports,
         contact_attributes, broadcasts, webhooks, billing, team, audit, consent, inbox, inbox_live, orders,
         automation, analytics, exports)

bp = Blueprint("portal", __name__)
for page in PAGES:
    bp.register_blueprint(page.bp)
page_context.register(bp)
# Every page's header may hold a form that ends on Stripe's pages (see saas.portal.billing).
bp.after_request(billing.allow_redirects_to_stripe)


def init_app(app: Flask) -> None:
    """The portal's pages on ``app``, and its login (Flask-Login's page and user loader)."""
    sessions.init_login(login_manager)
    app.register_blueprint(bp)
