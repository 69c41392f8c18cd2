"""Where a tenant's webhook may point: IPv6 addresses that carry an IPv4 address are judged by it.

NAT64 (64:ff9b::/96), 6to4 (2002::/16), IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d)
addresses reach the IPv4 address inside them; Teredo (2001::/32) and local-use NAT64 (64:ff9b:1::/48)
are not globally reachable at all. Checked on the literal address when a URL is saved, and on every
address a host name resolves to when delivering (the resolver is handed in, as delivery hands in the
system's).
"""
from __future__ import annotations

import socket

import pytest

from saas.messaging.tenant_webhooks import endpoints

# (address, public?) : what each form carries is in the comment.
ADDRESSES = [
    ("64:ff9b::7f00:1", False),                           # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", False),                            # NAT64 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", False),                        # NAT64 of 169.254.169.254 (cloud metadata)
    ("64:ff9b::c0a8:101", False),                         # NAT64 of 192.168.1.1
    ("64:ff9b::6440:1", False),                           # NAT64 of 100.64.0.1 (shared address space)
    ("64:ff9b::e000:1", False),                           # NAT64 of 224.0.0.1 (multicast)
    ("64:ff9b::808:808", True),                           # NAT64 of 8.8.8.8
    ("64:ff9b:1::808:808", False),                        # local-use NAT64: never global, whatever it holds
    ("64:ff9b:1:7f00:1::", False),                        # local-use NAT64 of 127.0.0.1 (a /48 prefix's place)
    ("2002:7f00:1::1", False),                            # 6to4 of 127.0.0.1
    ("2002:a00:1::", False),                              # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::1", False),                         # 6to4 of 169.254.169.254
    ("2002:808:808::1", True),                            # 6to4 of 8.8.8.8
    ("::127.0.0.1", False),                               # IPv4-compatible 127.0.0.1
    ("::10.0.0.1", False),                                # IPv4-compatible 10.0.0.1
    ("::169.254.169.254", False),                         # IPv4-compatible 169.254.169.254
    ("::8.8.8.8", True),                                  # IPv4-compatible 8.8.8.8
    ("::ffff:127.0.0.1", False),                          # IPv4-mapped 127.0.0.1
    ("::ffff:169.254.169.254", False),                    # IPv4-mapped 169.254.169.254
    ("::ffff:224.0.0.1", False),                          # IPv4-mapped multicast
    ("::ffff:8.8.8.8", True),                             # IPv4-mapped 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),      # Teredo, client 127.0.0.1 (obfuscated)
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),      # Teredo, client 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", False),      # Teredo, client 8.8.8.8: Teredo is not global
    ("::", False), ("::1", False), ("fe80::1%eth0", False), ("fd00::1", False),
    ("2606:4700:4700::1111", True), ("93.184.216.34", True),
]


@pytest.mark.parametrize("address, public", ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_an_ipv6_address_carrying_an_ipv4_address_is_as_public_as_that_address(address, public):
    assert endpoints.public_address(address) is public


def _url(address: str) -> str:
    host = f"[{address.replace('%', '%25')}]" if ":" in address else address
    return f"https://{host}:8443/hooks/whatsapp"


@pytest.mark.parametrize("address, public", ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_a_url_naming_such_an_address_is_refused_when_saved(app, address, public):
    with app.app_context():
        if public:
            assert endpoints.check_url(_url(address)) == _url(address)
        else:
            with pytest.raises(endpoints.EndpointError, match="private, loopback or link-local"):
                endpoints.check_url(_url(address))


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "017700000001", "0xa9fea9fe"])
def test_ipv4_addresses_in_the_forms_the_resolver_also_reads_are_refused_when_saved(app, host):
    with app.app_context():
        with pytest.raises(endpoints.EndpointError, match="private, loopback or link-local"):
            endpoints.check_url(f"http://{host}:8080/hook")


def resolver(*addresses):
    """A stand-in for socket.getaddrinfo that answers ``addresses`` for any host (no DNS is asked)."""
    def getaddrinfo(host, port, type=0, **_):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
    return getaddrinfo


@pytest.mark.parametrize("address, public", ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_a_host_resolving_to_such_an_address_is_refused_when_delivering(address, public):
    url = "https://hooks.tenant.example/whatsapp"
    if public:
        assert endpoints.resolve(url, allow_private_targets=False, getaddrinfo=resolver(address)) == (
            "hooks.tenant.example", 443, address)
    else:
        with pytest.raises(endpoints.TargetRefused, match="resolves to a non-public address"):
            endpoints.resolve(url, allow_private_targets=False, getaddrinfo=resolver(address))


def test_a_host_with_one_public_and_one_carried_private_address_is_refused_not_raced():
    with pytest.raises(endpoints.TargetRefused, match=r"64:ff9b::a9fe:a9fe"):
        endpoints.resolve("https://hooks.tenant.example/", allow_private_targets=False,
                          getaddrinfo=resolver("93.184.216.34", "64:ff9b::a9fe:a9fe"))
    # Allowed for tests and local work, as for any private target.
    assert endpoints.resolve("https://hooks.tenant.example/", allow_private_targets=True,
                             getaddrinfo=resolver("64:ff9b::7f00:1"))[2] == "64:ff9b::7f00:1"
