"""The client's address: X-Forwarded-For counts only when it comes from a configured proxy (GOFER_TRUSTED_PROXIES);
every part of Gofer asks one function (kernel/api/middleware.py)."""

from __future__ import annotations

import subprocess
import sys

from django.http import HttpResponse
from django.test import RequestFactory

from kernel.api.middleware import ClientAddressMiddleware, client_address, scope_client_address
from tests.support.processes import REPO, child_env


def seen_by_django(settings, peer: str, forwarded: str | None) -> tuple[str, str]:
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/api/system/metadata", **extra)
    seen = {}

    def view(req):
        seen["address"], seen["remote"] = req.client_address, req.META["REMOTE_ADDR"]
        return HttpResponse()

    ClientAddressMiddleware(view)(request)
    return seen["address"], seen["remote"]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(settings):
    settings.GOFER_TRUSTED_PROXIES = []
    assert seen_by_django(settings, "203.0.113.7", "10.9.9.9") == ("203.0.113.7", "203.0.113.7")


def test_by_default_no_proxy_is_trusted_not_even_loopback(settings):
    settings.GOFER_TRUSTED_PROXIES = []
    assert client_address("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"


def test_a_trusted_proxy_names_the_client(settings):
    settings.GOFER_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert seen_by_django(settings, "10.1.2.3", "198.51.100.1") == ("198.51.100.1", "198.51.100.1")


def test_the_rightmost_untrusted_hop_is_the_client_whatever_the_client_prepended(settings):
    settings.GOFER_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.10"]
    # The client sent "X-Forwarded-For: 1.1.1.1"; its real address was appended by the two proxies in front.
    assert client_address("10.0.0.2", ["1.1.1.1, 198.51.100.9, 192.0.2.10"]) == "198.51.100.9"
    assert client_address("10.0.0.2", ["1.1.1.1", "198.51.100.9"]) == "198.51.100.9"


def test_a_malformed_hop_stops_at_the_last_trusted_proxy(settings):
    settings.GOFER_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address("10.0.0.2", ["not-an-address"]) == "10.0.0.2"
    assert client_address("10.0.0.2", []) == "10.0.0.2"


def test_addresses_with_ports_and_ipv6_are_understood(settings):
    settings.GOFER_TRUSTED_PROXIES = ["::1", "127.0.0.1"]
    assert client_address("::1", ["[2001:db8::5]:4711"]) == "2001:db8::5"
    assert client_address("127.0.0.1", ["198.51.100.1:80"]) == "198.51.100.1"


def test_websockets_use_the_same_function(settings):
    settings.GOFER_TRUSTED_PROXIES = []
    scope = {"client": ("203.0.113.7", 5000), "headers": [(b"x-forwarded-for", b"10.9.9.9")]}
    assert scope_client_address(scope) == "203.0.113.7"
    settings.GOFER_TRUSTED_PROXIES = ["203.0.113.0/24"]
    assert scope_client_address(scope) == "10.9.9.9"


def test_a_bad_trusted_proxy_entry_stops_the_server_at_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=child_env(GOFER_TRUSTED_PROXIES="10.0.0.0/8,not-a-network"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GOFER_TRUSTED_PROXIES" in result.stderr


def test_make_run_does_not_hand_the_client_address_to_daphnes_proxy_headers():
    from kernel.management.commands.serve import daphne_argv

    assert "--proxy-headers" not in daphne_argv()
    assert "--proxy-headers" not in (REPO / "Makefile").read_text()
