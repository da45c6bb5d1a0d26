"""Fixtures of the secret store tests: URLs, a pipeline in team-a, and Gofer switched to a real OpenBao."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import hvac
import hvac.exceptions
import pytest

from secretstore import backends
from tests.support.bao import BaoServer, bao_server  # noqa: F401 - the session fixture, used through ``vault``


@pytest.fixture(autouse=True)
def _fresh_vault_clients():
    """Each test starts without cached Vault clients, since each one points Gofer at its own settings."""
    backends.forget_clients()
    yield
    backends.forget_clients()


@dataclass
class Vault:
    server: BaoServer
    prefix: str
    mount: str = "secret"

    @property
    def root(self) -> hvac.Client:
        return self.server.client()

    def read(self, logical_path: str) -> str | None:
        """The value Gofer stored for ``logical_path`` (``pipelines/ns/p/key``), read back with hvac; None if absent."""
        try:
            response = self.root.secrets.kv.v2.read_secret_version(
                path=f"{self.prefix}/{logical_path}", mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        return response["data"]["data"]["value"]

    def write(self, logical_path: str, value: str) -> None:
        self.root.secrets.kv.v2.create_or_update_secret(
            path=f"{self.prefix}/{logical_path}", secret={"value": value}, mount_point=self.mount
        )


@pytest.fixture
def vault(bao_server, settings) -> Vault:  # noqa: F811 - the fixture imported above
    """Gofer configured for the vault backend with the root token, under a prefix of its own."""
    prefix = f"gofer-test-{uuid.uuid4().hex[:12]}"
    settings.GOFER_SECRET_BACKEND = "vault"
    settings.GOFER_VAULT_ADDR = bao_server.addr
    settings.GOFER_VAULT_TOKEN = bao_server.root_token
    settings.GOFER_VAULT_ROLE_ID = ""
    settings.GOFER_VAULT_SECRET_ID = ""
    settings.GOFER_VAULT_MOUNT = "secret"
    settings.GOFER_VAULT_PREFIX = prefix
    settings.GOFER_VAULT_NAMESPACE = ""
    return Vault(bao_server, prefix)
