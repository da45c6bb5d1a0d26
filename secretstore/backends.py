"""Where secret values live: Gofer's own database (encrypted) or Vault/OpenBao KV v2.

One small interface, addressed by a *logical path* (``pipelines/<namespace>/<pipeline>/<key>`` or
``global/<key>``):

- ``put(path, value) -> str | None`` keeps the value and returns what the secret's row must store in its ``value``
  column: the plaintext for the database backend (the EncryptedTextField encrypts it), ``None`` for Vault;
- ``get(path, stored) -> str`` returns the value, given that column;
- ``delete(path)`` forgets it (a no-op for the database backend: deleting the row is enough).

The column therefore says where each value lives (``None``: Vault), and ``backend_for_stored`` picks the backend
that can read it, whatever ``GOFER_SECRET_BACKEND`` says today; ``configured_backend`` is where new writes go.

Nothing here ever puts a value in an exception message or a log line: errors name the Vault address, the path and
what went wrong.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import hvac
import hvac.exceptions
import requests
from django.conf import settings

from kernel.errors import NotFound, Unavailable

logger = logging.getLogger(__name__)

DATABASE = "database"
VAULT = "vault"
BACKENDS = (DATABASE, VAULT)
# Seconds Gofer waits for Vault before answering 503; a run start must not hang on a dead Vault.
# The field of the KV v2 secret that holds the value: {"value": "..."}.
VAULT_VALUE_FIELD = "value"

T = TypeVar("T")


class VaultUnavailable(Unavailable):
    """Vault could not be used (unreachable, sealed, misconfigured, refused Gofer). The message names Vault."""


class ValueMissing(NotFound):
    """The row exists but its value does not (deleted from Vault behind Gofer's back)."""


def pipeline_secret_path(namespace_id: str, pipeline_slug: str, key: str) -> str:
    return f"pipelines/{namespace_id}/{pipeline_slug}/{key}"


def global_secret_path(key: str) -> str:
    return f"global/{key}"


class SecretBackend(ABC):
    name: ClassVar[str]

    @abstractmethod
    def put(self, path: str, value: str) -> str | None:
        """Keep ``value`` for ``path``; returns what the row's ``value`` column must hold."""

    @abstractmethod
    def get(self, path: str, stored: str | None) -> str:
        """The value of ``path``, given the row's column. Raises ValueMissing or VaultUnavailable."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Forget the value of ``path``. Deleting what does not exist is not an error."""


class DatabaseBackend(SecretBackend):
    """The value travels in the row itself; the EncryptedTextField encrypts it on the way to the column."""

    name = DATABASE

    def put(self, path: str, value: str) -> str | None:
        return value

    def get(self, path: str, stored: str | None) -> str:
        if stored is None:
            raise ValueMissing(f"secret {path}: no value is stored in Gofer's database", field="key")
        return stored

    def delete(self, path: str) -> None:
        return None


@dataclass(frozen=True)
class VaultConfig:
    addr: str
    token: str
    role_id: str
    secret_id: str
    mount: str
    prefix: str
    namespace: str
    verify: bool

    @classmethod
    def from_settings(cls) -> VaultConfig:
        return cls(
            addr=settings.GOFER_VAULT_ADDR,
            token=settings.GOFER_VAULT_TOKEN,
            role_id=settings.GOFER_VAULT_ROLE_ID,
            secret_id=settings.GOFER_VAULT_SECRET_ID,
            mount=settings.GOFER_VAULT_MOUNT.strip("/"),
            prefix=settings.GOFER_VAULT_PREFIX.strip("/"),
            namespace=settings.GOFER_VAULT_NAMESPACE,
            verify=settings.GOFER_VAULT_VERIFY,
        )

    @property
    def uses_approle(self) -> bool:
        return bool(self.role_id and self.secret_id)

    def problem(self) -> str | None:
        """What is wrong with this configuration, or None. Shared by the runtime and ``manage.py check``."""
        if not self.addr:
            return "GOFER_VAULT_ADDR is empty"
        if not self.mount:
            return "GOFER_VAULT_MOUNT is empty"
        if bool(self.role_id) != bool(self.secret_id):
            return "AppRole needs both GOFER_VAULT_ROLE_ID and GOFER_VAULT_SECRET_ID"
        if not self.token and not self.uses_approle:
            return "set GOFER_VAULT_TOKEN, or GOFER_VAULT_ROLE_ID and GOFER_VAULT_SECRET_ID for AppRole"
        return None


# One authenticated client per configuration, shared by threads: AppRole logs in once, not on every request.
_clients: dict[VaultConfig, hvac.Client] = {}
_clients_lock = threading.Lock()


class VaultBackend(SecretBackend):
    """KV v2 under ``GOFER_VAULT_MOUNT``, at ``<GOFER_VAULT_PREFIX>/<logical path>``, the value in field ``value``.

    Authenticates with ``GOFER_VAULT_TOKEN``, or with AppRole when ``GOFER_VAULT_ROLE_ID`` and
    ``GOFER_VAULT_SECRET_ID`` are set; with AppRole a refused token (expired or revoked) triggers one new login and
    one retry. Every failure to use Vault becomes VaultUnavailable (HTTP 503) naming Vault and the path.
    """

    name = VAULT

    def __init__(self, config: VaultConfig | None = None) -> None:
        self.config = config or VaultConfig.from_settings()

    def vault_path(self, path: str) -> str:
        return f"{self.config.prefix}/{path}" if self.config.prefix else path

    # --- the interface ------------------------------------------------------------------------------------------

    def put(self, path: str, value: str) -> str | None:
        full = self.vault_path(path)
        self._call(
            "write",
            full,
            lambda client: client.secrets.kv.v2.create_or_update_secret(
                path=full, secret={VAULT_VALUE_FIELD: value}, mount_point=self.config.mount
            ),
        )
        return None

    def get(self, path: str, stored: str | None) -> str:
        full = self.vault_path(path)
        try:
            response = self._call(
                "read",
                full,
                lambda client: client.secrets.kv.v2.read_secret_version(
                    path=full, mount_point=self.config.mount, raise_on_deleted_version=True
                ),
            )
        except hvac.exceptions.InvalidPath:
            raise ValueMissing(
                f"secret {path}: its value is missing from Vault ({self.config.mount}/{full})", field="key"
            ) from None
        data = (response or {}).get("data", {}).get("data") or {}
        value = data.get(VAULT_VALUE_FIELD)
        if not isinstance(value, str):
            raise ValueMissing(
                f"secret {path}: Vault entry {self.config.mount}/{full} has no string field {VAULT_VALUE_FIELD!r}",
                field="key",
            )
        return value

    def delete(self, path: str) -> None:
        full = self.vault_path(path)
        try:
            self._call(
                "delete",
                full,
                lambda client: client.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=full, mount_point=self.config.mount
                ),
            )
        except hvac.exceptions.InvalidPath:
            return

    # --- plumbing -------------------------------------------------------------------------------------------------

    def _unavailable(self, what: str, full_path: str, reason: str) -> VaultUnavailable:
        return _logged(f"Vault at {self.config.addr} could not {what} {self.config.mount}/{full_path}: {reason}")

    def _client(self, *, fresh_login: bool = False) -> hvac.Client:
        problem = self.config.problem()
        if problem:
            raise VaultUnavailable(f"Vault is not configured: {problem}")
        with _clients_lock:
            client = _clients.get(self.config)
            if client is None:
                client = hvac.Client(
                    url=self.config.addr,
                    token=None if self.config.uses_approle else self.config.token,
                    namespace=self.config.namespace or None,
                    verify=self.config.verify,
                    timeout=settings.GOFER_VAULT_TIMEOUT,
                )
                fresh_login = self.config.uses_approle
                _clients[self.config] = client
        if fresh_login:
            self._login(client)
        return client

    def _login(self, client: hvac.Client) -> None:
        try:
            client.auth.approle.login(role_id=self.config.role_id, secret_id=self.config.secret_id, use_token=True)
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise _logged(
                f"Vault at {self.config.addr} could not log Gofer in with AppRole (GOFER_VAULT_ROLE_ID): {_reason(exc)}"
            ) from None

    def _call(self, what: str, full_path: str, operation: Callable[[hvac.Client], T]) -> T:
        """Run ``operation``; with AppRole, log in again once if Vault refuses the token. InvalidPath passes through."""
        client = self._client()
        try:
            try:
                return operation(client)
            except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
                if not self.config.uses_approle:
                    raise
                logger.info("Vault refused Gofer's AppRole token (expired or revoked); logging in again")
                return operation(self._client(fresh_login=True))
        except hvac.exceptions.InvalidPath:
            if what == "write":
                raise self._unavailable(
                    what, full_path, "no KV version 2 engine at this mount (GOFER_VAULT_MOUNT)"
                ) from None
            raise
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            auth = "AppRole GOFER_VAULT_ROLE_ID" if self.config.uses_approle else "GOFER_VAULT_TOKEN"
            raise self._unavailable(
                what, full_path, f"permission denied to {auth}; check its policy on this path"
            ) from None
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise self._unavailable(what, full_path, _reason(exc)) from None


def _logged(message: str) -> VaultUnavailable:
    logger.warning("%s", message)
    return VaultUnavailable(message)


def _reason(exc: Exception) -> str:
    """A short, value-free description of a Vault failure: Vault's own error strings, or the connection problem."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {settings.GOFER_VAULT_TIMEOUT} seconds"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (is Vault running and GOFER_VAULT_ADDR right?)"
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    if isinstance(exc, hvac.exceptions.VaultDown):
        return "Vault is sealed or down"
    errors = getattr(exc, "errors", None)
    if errors:
        return "; ".join(str(e) for e in errors)[:300]
    return type(exc).__name__


def configured_backend() -> SecretBackend:
    """The backend new values are written to (``GOFER_SECRET_BACKEND``)."""
    name = settings.GOFER_SECRET_BACKEND
    if name == DATABASE:
        return DatabaseBackend()
    if name == VAULT:
        return VaultBackend()
    raise Unavailable(f"secret store is misconfigured: GOFER_SECRET_BACKEND is {name!r:.40}; use database or vault")


def backend_for_stored(stored: str | None) -> SecretBackend:
    """The backend that holds a value whose row column is ``stored`` (NULL: Vault)."""
    return VaultBackend() if stored is None else DatabaseBackend()


def forget_clients() -> None:
    """Drop cached Vault clients (tests, or after changing Vault settings at runtime)."""
    with _clients_lock:
        _clients.clear()
