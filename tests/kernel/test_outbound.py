"""The outbound policy (kernel/outbound.py): which hosts a tenant's names may make Gofer or its engine contact."""

from __future__ import annotations

import pytest

from kernel import outbound


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("busybox", ("docker.io", None)),
        ("library/busybox:1.36", ("docker.io", None)),
        ("ghcr.io/org/app:1", ("ghcr.io", None)),
        ("127.0.0.1:18181/x/y", ("127.0.0.1", 18181)),
        ("localhost/x", ("localhost", None)),
        ("[::1]:5000/x", ("::1", 5000)),
        ("registry.example.com:443/team/app@sha256:" + "0" * 64, ("registry.example.com", 443)),
    ],
)
def test_the_registry_of_an_image_follows_dockers_rule(image, registry):
    assert outbound.registry_of(image) == registry


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 18181),
        ("10.0.0.5", 5000),
        ("192.168.1.1", None),
        ("169.254.169.254", None),
        ("::1", 5000),
        ("100.64.0.1", None),
        ("0.0.0.0", None),  # noqa: S104 - an address refused as a destination, not a bind
        ("localhost", None),
        ("registry.localhost", None),
        ("::ffff:127.0.0.1", None),
    ],
)
def test_loopback_private_and_link_local_destinations_are_refused_unless_listed(host, port):
    policy = outbound.policy([], allow_public=True, setting="GOFER_ALLOWED_REGISTRIES")
    with pytest.raises(outbound.Refused, match="GOFER_ALLOWED_REGISTRIES"):
        policy.check_literal(host, port)


def test_a_listed_host_port_or_network_is_allowed():
    policy = outbound.policy(["127.0.0.1:5000", "10.0.0.0/8", "intranet.example"], allow_public=False, setting="X")
    policy.check("127.0.0.1", 5000)
    policy.check("10.1.2.3", None)
    policy.check_literal("intranet.example", 443)
    with pytest.raises(outbound.Refused):
        policy.check("127.0.0.1", 5001)  # listed with another port


def test_public_hosts_are_refused_when_only_listed_hosts_are_allowed():
    policy = outbound.policy(["ghcr.io"], allow_public=False, setting="GOFER_ALLOWED_REGISTRIES")
    policy.check_literal("ghcr.io", None)
    with pytest.raises(outbound.Refused, match="not an allowed destination"):
        policy.check_literal("quay.io", None)


def test_a_name_that_resolves_to_a_private_address_is_refused_at_use(monkeypatch):
    """The name passes the literal check; its DNS answer does not. DNS is the one thing faked here: this machine has
    no resolver we control, so getaddrinfo answers for this one name as a rebinding attacker's server would."""
    real = outbound.socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "registry.rebind.example":
            return [(2, 1, 6, "", ("10.1.2.3", 0)), (2, 1, 6, "", ("93.184.216.34", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", rebinding)
    policy = outbound.policy([], allow_public=True, setting="X")
    policy.check_literal("registry.rebind.example", None)
    with pytest.raises(outbound.Refused, match="resolves to 10.1.2.3, a private address"):
        policy.check("registry.rebind.example", None)


def test_a_name_that_does_not_resolve_is_refused_at_use():
    policy = outbound.policy([], allow_public=True, setting="X")
    with pytest.raises(outbound.Refused, match="does not resolve"):
        policy.check("no-such-host.invalid", None)


def test_public_addresses_are_allowed():
    policy = outbound.policy([], allow_public=True, setting="X")
    policy.check("93.184.216.34", None)  # an address resolves to itself: no DNS, no traffic
    policy.check("2606:4700::1111", 443)
