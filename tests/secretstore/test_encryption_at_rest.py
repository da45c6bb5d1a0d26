"""What the database really holds: ciphertext only, read back with SQL (run with GOFER_TEST_DB=postgres too)."""

from __future__ import annotations

import base64

import pytest

from kernel import encryption
from pipelines.models import Task
from secretstore.models import GlobalSecret, PipelineSecret
from tests.conftest import simple_config
from tests.support.secrets import GLOBAL, SECRETS, raw_column

PLAINTEXT = "plain-Text-Secret-4242-zz"
REGISTRY_PASSWORD = "registry-Pass-9090-qq"


def giveaways(text: str) -> list[str]:
    """The plaintext and its base64 forms: none may appear in a column."""
    raw = text.encode()
    forms = [text]
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms += [encoded, encoded.rstrip("=")]
    aligned = raw[: len(raw) - len(raw) % 3]
    forms.append(base64.b64encode(aligned).decode())
    return forms


def assert_ciphertext(stored: str | None, plaintext: str) -> None:
    assert stored is not None
    assert stored.startswith(encryption.PREFIX)
    for form in giveaways(plaintext):
        assert form not in stored, form


def test_a_pipeline_secret_is_stored_as_ciphertext(alice, team_a_pipeline):
    assert alice.post(SECRETS, {"key": "db_password", "content": PLAINTEXT}).status_code == 201
    row = PipelineSecret.objects.get(key="db_password")
    stored = raw_column(PipelineSecret, "value", row.pk)
    assert_ciphertext(stored, PLAINTEXT)
    # ... and it is the real thing: it decrypts back, bound to this column.
    assert encryption.decrypt(stored, "secretstore.PipelineSecret.value") == PLAINTEXT
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt(stored, "secretstore.GlobalSecret.value")


def test_a_global_secret_is_stored_as_ciphertext(admin):
    assert admin.post(GLOBAL, {"key": "slack", "content": PLAINTEXT, "namespaces": [".*"]}).status_code == 201
    row = GlobalSecret.objects.get(key="slack")
    assert_ciphertext(raw_column(GlobalSecret, "value", row.pk), PLAINTEXT)


def test_overwriting_stores_fresh_ciphertext(alice, team_a_pipeline):
    alice.post(SECRETS, {"key": "k_1", "content": PLAINTEXT})
    first = raw_column(PipelineSecret, "value", PipelineSecret.objects.get().pk)
    alice.post(SECRETS, {"key": "k_1", "content": PLAINTEXT, "force": True})
    second = raw_column(PipelineSecret, "value", PipelineSecret.objects.get().pk)
    # Same plaintext, new random nonce: equal values cannot be spotted by comparing columns.
    assert first != second
    assert_ciphertext(second, PLAINTEXT)


def test_registry_auth_of_a_task_is_stored_as_ciphertext(alice, namespaces):
    config = simple_config("private")
    config["tasks"][0]["registry_auth"] = {"user": "robot-user-77", "pass": REGISTRY_PASSWORD}
    response = alice.post("/api/namespaces/team-a/pipelines/private/configs", {"config": config})
    assert response.status_code == 201, response.content
    assert REGISTRY_PASSWORD not in response.content.decode()
    task = Task.objects.get(config__pipeline__slug="private", slug="compile")
    stored = raw_column(Task, "registry_auth", task.pk)
    assert_ciphertext(stored, REGISTRY_PASSWORD)
    assert "robot-user-77" not in stored
    assert task.registry_auth == {"user": "robot-user-77", "pass": REGISTRY_PASSWORD}


def test_tasks_without_registry_auth_store_null(alice, namespaces):
    alice.post("/api/namespaces/team-a/pipelines/public/configs", {"config": simple_config("public")})
    task = Task.objects.get(config__pipeline__slug="public", slug="compile")
    assert raw_column(Task, "registry_auth", task.pk) is None


def test_listing_does_not_decrypt_any_value(alice, team_a_pipeline, settings, django_assert_num_queries):
    alice.post(SECRETS, {"key": "k_1", "content": PLAINTEXT})
    # With a key that cannot decrypt the stored value, metadata still reads: the value column is never loaded.
    settings.GOFER_ENCRYPTION_KEY = base64.b64encode(b"\x01" * 32).decode()
    assert alice.get(SECRETS).status_code == 200
    assert alice.get(f"{SECRETS}/k_1").status_code == 200
    response = alice.get(f"{SECRETS}/k_1", include_secret="true")
    assert response.status_code == 503
    assert "GOFER_ENCRYPTION_KEY" in response.json()["message"]
