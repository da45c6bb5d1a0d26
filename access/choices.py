"""Kinds of tokens. Actions, resources and system roles are the kernel's (kernel/choices.py)."""

from django.db import models


class TokenKind(models.TextChoices):
    """Why a token exists. Run tokens are minted for ``inject_api_token`` and stop working when their run ends."""

    USER = "user"
    BOOTSTRAP = "bootstrap"
    RUN = "run"
    # A third-party extension's own token (triggers): scoped to its subscriptions, deleted when it is uninstalled.
    EXTENSION = "extension"
    # A sandbox visitor's token (sandbox app): everything in the visitor's own namespace, nothing else; it expires,
    # and is deleted with the namespace, after GOFER_SANDBOX_TTL.
    SANDBOX = "sandbox"
