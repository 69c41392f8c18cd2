"""A tenant's webhook endpoint: its URL, its signing secret, and where it may point.

The URL may not reach loopback, private, link-local or otherwise non-public
addresses, nor IPv6 addresses that carry one (NAT64, 6to4, Teredo, IPv4-mapped
or -compatible): checked for literal addresses when it is saved, and at every
delivery after DNS resolution, on the very address connected to (see
saas.messaging.tenant_webhooks.delivery). ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` lifts the rule
for tests and local work. https is required in production unless that
setting is on.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

from saas.extensions import db
from saas.messaging.models import WebhookEndpoint
from saas.crypto import decrypt_token, encrypt_token
from saas.tenants.scoping import owned_query
from saas.timeutil import utcnow

SECRET_PREFIX = "whsec_"
MAX_URL = 2048


class EndpointError(Exception):
    """The URL cannot be used; ``message`` says why, for the form."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TargetRefused(Exception):
    """A delivery's address may not be connected to."""


@dataclass(frozen=True)
class NewSecret:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def allow_private() -> bool:
    return bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE_TARGETS"))


def https_required() -> bool:
    return current_app.config.get("APP_ENV") == "production" and not allow_private()


# IPv6 ranges that carry an IPv4 address in their last 32 bits: NAT64's well-known prefix (a NAT64
# gateway connects to that IPv4 address) and the deprecated IPv4-compatible addresses.
CARRY_IPV4_LAST = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
# NAT64 for local use (RFC 8215): the IPv4 address may sit anywhere, and the range is never global.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# What inet_aton, and so the resolver, reads as an IPv4 address: 127.1, 2130706433, 0x7f.0.0.1...
LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")


def carried_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, IPv4-compatible, NAT64, 6to4, and Teredo's
    server and (unobfuscated) client."""
    carried = [ip.ipv4_mapped] if ip.ipv4_mapped is not None else []
    if any(ip in network for network in CARRY_IPV4_LAST):
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        carried.append(ip.sixtofour)
    if ip.teredo is not None:
        carried.extend(ip.teredo)
    return carried


def _routed(ip) -> bool:
    return ip.is_global and not ip.is_multicast


def public_address(address: str) -> bool:
    """Whether an IP address is one the internet routes to (not loopback, private, link-local, reserved...).

    An IPv6 address that carries an IPv4 address reaches that address (through a NAT64 gateway, a 6to4
    or Teredo relay, or the host's own IPv4 stack): it is public only if that IPv4 address is.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in LOCAL_NAT64:
            return False
        if ip.ipv4_mapped is not None:
            return _routed(ip.ipv4_mapped)  # an IPv4 address written as IPv6: judged as that address alone
        if not all(_routed(carried) for carried in carried_ipv4(ip)):
            return False
    return _routed(ip)


def _literal_ip(host: str):
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_url(url: str) -> str:
    """The URL, stripped, if an endpoint may have it; EndpointError says why not."""
    url = (url or "").strip()
    if not url:
        raise EndpointError("Enter the URL of your webhook.")
    if len(url) > MAX_URL:
        raise EndpointError(f"The URL may be at most {MAX_URL} characters.")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise EndpointError("The URL may not contain spaces or control characters.")
    if not url.isascii():
        raise EndpointError("Write the URL in ASCII: punycode for an international host name, "
                            "percent-encoding in the path.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise EndpointError("The URL must start with https://.")
    if parts.scheme == "http" and https_required():
        raise EndpointError("The URL must use https.")
    if parts.username is not None or parts.password is not None:
        raise EndpointError("Put no user name or password in the URL; check our signature instead.")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise EndpointError("The URL's port is not valid.") from None
    if not host:
        raise EndpointError("The URL has no host name.")
    if port == 0:
        raise EndpointError("The URL's port is not valid.")
    if not allow_private():
        ip = _literal_ip(host)
        if ip is not None and not public_address(str(ip)):
            raise EndpointError("The URL points at a private, loopback or link-local address.")
        if host == "localhost" or host.endswith(".localhost"):
            raise EndpointError("The URL points at this machine.")
    return url


def resolve(url: str, *, allow_private_targets: bool, getaddrinfo=socket.getaddrinfo) -> tuple[str, int, str]:
    """(host, port, the address to connect to) for a delivery to ``url``.

    Every address the host resolves to must be public (unless private targets
    are allowed): a name that also resolves to a private address is refused
    rather than raced. Raises TargetRefused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("not an http(s) URL")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from None
    addresses = [info[4][0] for info in found]
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address")
    if not allow_private_targets:
        refused = [a for a in addresses if not public_address(a)]
        if refused:
            raise TargetRefused(f"{host} resolves to a non-public address ({refused[0]}); not connecting")
    return host, port, addresses[0]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def endpoint_for(tenant) -> WebhookEndpoint | None:
    return db.session.scalar(owned_query(WebhookEndpoint, tenant))


def save_endpoint(tenant, url: str) -> tuple[WebhookEndpoint, str | None]:
    """Set the tenant's webhook URL (and turn forwarding on). Commits.

    Returns the endpoint and, when it is new, its signing secret (shown once).
    Raises EndpointError for a URL it may not have.
    """
    url = check_url(url)
    endpoint = endpoint_for(tenant)
    secret = None
    now = utcnow()
    if endpoint is None:
        secret = new_secret()
        endpoint = WebhookEndpoint(tenant_id=tenant.id, url=url, signing_secret_encrypted=encrypt_token(secret),
                                   secret_hint=secret[-4:], active=True, created_at=now, updated_at=now)
        db.session.add(endpoint)
    else:
        endpoint.url, endpoint.active, endpoint.updated_at = url, True, now
    db.session.commit()
    return endpoint, secret


def rotate_secret(tenant) -> NewSecret | None:
    """Replace the endpoint's signing secret; deliveries from now on are signed with the new one. Commits."""
    endpoint = endpoint_for(tenant)
    if endpoint is None:
        return None
    secret = new_secret()
    endpoint.signing_secret_encrypted, endpoint.secret_hint = encrypt_token(secret), secret[-4:]
    endpoint.updated_at = utcnow()
    db.session.commit()
    return NewSecret(endpoint, secret)


def pause(tenant) -> WebhookEndpoint | None:
    """Stop forwarding: no new deliveries are made, pending ones wait. Commits."""
    endpoint = endpoint_for(tenant)
    if endpoint is not None:
        endpoint.active, endpoint.updated_at = False, utcnow()
        db.session.commit()
    return endpoint


def signing_secret(endpoint_secret_encrypted: str) -> str:
    return decrypt_token(endpoint_secret_encrypted)


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 header's value, as WhatsApp signs its own webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
