"""``manage.py serve``: the server ``make run`` starts, daphne on GOFER_BIND, over HTTPS when GOFER_TLS_CERT and
GOFER_TLS_KEY are set (docs/security.md, "The server").

It replaces itself with ``daphne`` (exec), so signals and the exit status are daphne's own. Not passed to daphne on
purpose: ``--proxy-headers`` (it would believe any client's X-Forwarded-For; Gofer's ClientAddressMiddleware trusts
only GOFER_TRUSTED_PROXIES) and ``--http-timeout`` (it cuts every response at that age, follow-mode log streams and
large downloads included; slow *requests* are cut off by kernel/api/daphne_streaming.py instead).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

APPLICATION = "gofer_site.asgi:application"


def _escape(value: str) -> str:
    """Twisted's endpoint syntax: ``:`` separates fields and ``=`` values, ``\\`` escapes both."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def bind() -> tuple[str, int]:
    host, _, port = settings.GOFER_BIND.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise CommandError(f"GOFER_BIND: {settings.GOFER_BIND!r} is not host:port") from None


def daphne_argv() -> list[str]:
    """daphne's command line for this configuration."""
    host, port = bind()
    if settings.GOFER_TLS_CERT:
        for name in ("GOFER_TLS_CERT", "GOFER_TLS_KEY"):
            path = Path(getattr(settings, name))
            if not path.is_file():
                raise CommandError(f"{name}: {str(path)!r} is not a file (manage.py dev_certificate makes a pair)")
        endpoint = (
            f"ssl:port={port}:interface={_escape(host)}:privateKey={_escape(str(Path(settings.GOFER_TLS_KEY)))}"
            f":certKey={_escape(str(Path(settings.GOFER_TLS_CERT)))}"
        )
        listen = ["-e", endpoint]
    else:
        listen = ["-b", host, "-p", str(port)]
    # The external listener (GOFER_EXTERNAL_BIND, Gofer's second port): the same application, which routes requests
    # that arrive there to /api/external/ only (gofer_site/listeners.py).
    if settings.GOFER_EXTERNAL_BIND:
        ext_host, _, ext_port = settings.GOFER_EXTERNAL_BIND.rpartition(":")
        if not ext_port.isdigit():
            raise CommandError(f"GOFER_EXTERNAL_BIND: {settings.GOFER_EXTERNAL_BIND!r} is not host:port")
        kind = "ssl" if settings.GOFER_TLS_CERT else "tcp"
        endpoint = f"{kind}:port={ext_port}:interface={_escape(ext_host.strip('[]') or '127.0.0.1')}"
        if settings.GOFER_TLS_CERT:
            endpoint += (
                f":privateKey={_escape(str(Path(settings.GOFER_TLS_KEY)))}"
                f":certKey={_escape(str(Path(settings.GOFER_TLS_CERT)))}"
            )
        listen += ["-e", endpoint]
    return [sys.executable, "-m", "daphne", *listen, APPLICATION]


class Command(BaseCommand):
    help = "Serve the API, the admin and the websockets with daphne on GOFER_BIND (HTTPS with GOFER_TLS_CERT/KEY)."

    def handle(self, *args: Any, **options: Any) -> None:
        argv = daphne_argv()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)  # noqa: S606 - our own interpreter running daphne, no shell
