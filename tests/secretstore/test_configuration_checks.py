"""``manage.py check`` reports a secret store configuration that cannot work."""

from __future__ import annotations

from secretstore.checks import check_secret_backend


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_the_default_database_backend_passes(settings):
    settings.GOFER_SECRET_BACKEND = "database"
    assert check_secret_backend() == []


def test_an_unknown_backend_is_an_error(settings):
    settings.GOFER_SECRET_BACKEND = "s3"
    assert ids(check_secret_backend()) == ["secretstore.E001"]


def test_vault_needs_credentials(settings):
    settings.GOFER_SECRET_BACKEND = "vault"
    settings.GOFER_VAULT_TOKEN = ""
    settings.GOFER_VAULT_ROLE_ID = ""
    settings.GOFER_VAULT_SECRET_ID = ""
    [error] = check_secret_backend()
    assert error.id == "secretstore.E002"
    assert "GOFER_VAULT_TOKEN" in error.msg


def test_approle_needs_both_ids(settings):
    settings.GOFER_SECRET_BACKEND = "vault"
    settings.GOFER_VAULT_TOKEN = ""
    settings.GOFER_VAULT_ROLE_ID = "role"
    settings.GOFER_VAULT_SECRET_ID = ""
    [error] = check_secret_backend()
    assert "GOFER_VAULT_SECRET_ID" in error.msg


def test_vault_with_a_token_passes(settings):
    settings.GOFER_SECRET_BACKEND = "vault"
    settings.GOFER_VAULT_TOKEN = "t"
    assert check_secret_backend() == []


def test_an_unknown_backend_at_runtime_is_a_503_naming_the_setting(settings, alice, team_a_pipeline):
    settings.GOFER_SECRET_BACKEND = "s3"
    response = alice.post("/api/namespaces/team-a/pipelines/build/secrets", {"key": "k_1", "content": "value-1"})
    assert response.status_code == 503
    assert "GOFER_SECRET_BACKEND" in response.json()["message"]
