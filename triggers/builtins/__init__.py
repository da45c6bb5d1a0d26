"""The built-in extensions, by id. They run inside Gofer's own processes and are installed by default
(``GOFER_BUILTIN_EXTENSIONS``); an operator can uninstall them or replace their settings."""

from __future__ import annotations

from triggers.builtins.base import Builtin
from triggers.builtins.cron import Cron
from triggers.builtins.github import GitHub
from triggers.builtins.interval import Interval
from triggers.builtins.webhook import Webhook

BUILTINS: dict[str, Builtin] = {b.id: b for b in (Interval(), Cron(), Webhook(), GitHub())}


def register(builtin: Builtin) -> None:
    """Add a built-in kind (an app above this one, in its ready(): the notifiers' ``notify-*`` kinds, with
    ``kind = "notifier"``). Installed by default when named in ``GOFER_BUILTIN_EXTENSIONS``."""
    BUILTINS[builtin.id] = builtin
