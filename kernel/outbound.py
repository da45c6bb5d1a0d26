"""Where Gofer may send traffic on a tenant's behalf: image registries, notifier and webhook targets.

A tenant chooses names (an image reference, a webhook URL) that make Gofer, or the Docker daemon it drives, open
connections. Left alone, that is a port scanner and a way into the operator's own network: an image named
``127.0.0.1:18181/x/y`` made the daemon fetch Gofer's own pages, ``10.0.0.5:5000/x`` reaches the intranet. The rule,
one for every kind of destination:

- a host listed by the operator is allowed (``allowed`` entries: ``host``, ``host:port``, an address, or a CIDR);
- otherwise, when public destinations are allowed, a host is allowed if every address it resolves to is public:
  loopback, private, link-local, carrier-grade NAT, multicast, reserved and unspecified addresses are refused;
- everything else is refused, with a message that names the host and the setting that would allow it.

``check_literal`` applies what can be decided without DNS (at registration: an address or ``localhost`` in the
name); ``check`` adds DNS resolution (at use: a name that resolves to a private address). DNS can change between
the check and the connection, so the check is repeated every time, just before use.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# Docker Hub's names for itself: an image without a registry part is pulled from there.
DOCKER_HUB = "docker.io"


class Refused(Exception):
    """A destination is not allowed. The message names the host and what would allow it."""


@dataclass(frozen=True)
class Policy:
    """Which destinations are allowed: the operator's list, and whether other public hosts are."""

    allowed: tuple[str, ...] = ()
    allow_public: bool = True
    # The setting that lists allowed hosts, for messages ("add it to GOFER_ALLOWED_REGISTRIES").
    setting: str = ""

    def lists(self, host: str, port: int | None) -> bool:
        """Whether the operator's list names this host (with this port, if the entry has one)."""
        host = host.lower().strip("[]")
        for entry in self.allowed:
            entry = entry.strip().lower()
            if not entry:
                continue
            if "/" in entry:
                try:
                    if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            entry_host, entry_port = _split_host_port(entry)
            if entry_host == host and (entry_port is None or entry_port == port):
                return True
        return False

    def check_literal(self, host: str, port: int | None = None) -> None:
        """Refuse what is decided by the name alone: a non-public address, ``localhost``, or any unlisted host when
        only listed hosts are allowed. Raises Refused."""
        if self.lists(host, port):
            return
        shown = _show(host, port)
        if not self.allow_public:
            raise Refused(f"{shown} is not an allowed destination{self._hint()}")
        bare = host.lower().strip("[]").rstrip(".")
        if bare in LOCAL_NAMES or bare.endswith(".localhost"):
            raise Refused(f"{shown} is this machine, which is not an allowed destination{self._hint()}")
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            return
        if not is_public(address):
            raise Refused(f"{shown} is a {_kind(address)} address, which is not an allowed destination{self._hint()}")

    def check(self, host: str, port: int | None = None) -> None:
        """``check_literal``, then every address the name resolves to must be public (unless listed). Raises
        Refused, also when the name does not resolve."""
        self.check_literal(host, port)
        if self.lists(host, port):
            return
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise Refused(f"{_show(host, port)} does not resolve ({exc.strerror or exc})") from None
        for address in addresses:
            if not is_public(address) and not self.lists(str(address), port):
                raise Refused(
                    f"{_show(host, port)} resolves to {address}, a {_kind(address)} address, which is not an allowed "
                    f"destination{self._hint()}"
                )

    def _hint(self) -> str:
        return f" (an operator can list it in {self.setting})" if self.setting else ""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, CGNAT, multicast or reserved)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int | None = None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to now (an address resolves to itself). Raises OSError."""
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(bare, port or 0, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def registry_of(image: str) -> tuple[str, int | None]:
    """The registry (host, port) an image reference is pulled from, by Docker's rule: the first path component is a
    registry when it has a ``.`` or a ``:`` or is ``localhost``; otherwise the image is on Docker Hub."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return _split_host_port(first)
    return DOCKER_HUB, None


def _split_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        return host.lower(), int(port) if port else None
    except ValueError:
        return host.lower(), None


def _show(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port}" if port else shown


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for attribute, name in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return name
    return "non-public"


def policy(allowed: Iterable[str], *, allow_public: bool, setting: str) -> Policy:
    return Policy(tuple(a for a in allowed if a.strip()), allow_public, setting)
