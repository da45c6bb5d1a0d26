"""The operators' console for pipeline and global secrets: metadata only, never a value, deletes through the services,
and tenant scoping of staff users. Vault-backed cases use the real OpenBao dev server (the ``vault`` fixture)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.db import connection
from django.urls import reverse

from kernel import encryption
from secretstore import backends
from secretstore import services as secrets
from secretstore.models import GlobalSecret, PipelineSecret
from tests.conftest import deployed_pipeline
from tests.support.admin import (
    TEAM_A_FULL,
    TEAM_A_READ,
    WRITES_A_READS_B,
    change_url,
    changelist_url,
    delete_url,
    messages_of,
    staff_client,
)
from tests.support.processes import free_port
from tests.support.secrets import raw_column

PLAIN_A = "plaintext-of-team-a-0123456789"
PLAIN_B = "plaintext-of-team-b-9876543210"
PLAIN_GLOBAL = "plaintext-of-the-global-secret-42"


@pytest.fixture
def data(namespaces):
    """A secret in each of team-a/build and team-b/build and a global secret, all in Gofer's database."""
    team_a, team_b = deployed_pipeline("team-a"), deployed_pipeline("team-b")
    return {
        "team-a": secrets.put_pipeline_secret(team_a, "deploy_key", PLAIN_A),
        "team-b": secrets.put_pipeline_secret(team_b, "deploy_key", PLAIN_B),
        "global": secrets.put_global_secret("registry_password", PLAIN_GLOBAL, ["^team-"]),
    }


def pages_of(secret) -> list[str]:
    history = reverse(f"admin:secretstore_{secret._meta.model_name}_history", args=[secret.pk])
    return [changelist_url(type(secret)), change_url(secret), delete_url(secret), history]


def html(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, url
    return response.content.decode()


def results(response) -> list[str]:
    """The listed secrets as ``namespace/key`` (``key`` for global secrets)."""
    assert response.status_code == 200
    return sorted(
        f"{obj.namespace_id}/{obj.key}" if hasattr(obj, "namespace_id") else obj.key
        for obj in response.context["cl"].result_list
    )


# --- pages, and no value anywhere -----------------------------------------------------------------------------------


def test_every_secret_page_renders_without_the_value_or_its_ciphertext(admin_client, data):
    everything = ""
    for secret in data.values():
        for url in pages_of(secret):
            page = html(admin_client, url)
            assert secret.key in page, url
            assert "stored in database (encrypted)" in page or "Are you sure" in page or "History" in page, url
            everything += page
    everything += html(admin_client, changelist_url(PipelineSecret), q="deploy_key")
    everything += html(admin_client, reverse("admin:app_list", args=["secretstore"]))
    for plaintext in (PLAIN_A, PLAIN_B, PLAIN_GLOBAL):
        assert plaintext not in everything
    for secret in data.values():
        ciphertext = raw_column(type(secret), "value", secret.pk)
        assert ciphertext and ciphertext not in everything
    assert 'name="value"' not in everything
    assert "^team-" in html(admin_client, change_url(data["global"]))


def test_no_page_even_decrypts_a_value(admin_client, data):
    # A column no key can decrypt (written with SQL: the model field would encrypt it): a page that loaded the value
    # would fail with DecryptionError instead of rendering.
    for secret in (data["team-a"], data["global"]):
        table = connection.ops.quote_name(secret._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET value = %s WHERE id = %s", ["not-a-real-ciphertext", secret.pk])  # noqa: S608
        with pytest.raises(encryption.DecryptionError):
            type(secret).objects.get(pk=secret.pk).value  # noqa: B018 - loading it is the point
    for secret in (data["team-a"], data["global"]):
        for url in pages_of(secret):
            page = html(admin_client, url)
            assert "not-a-real-ciphertext" not in page
    response = admin_client.post(delete_url(data["team-a"]), {"post": "yes"})
    assert response.status_code == 302
    assert not PipelineSecret.objects.filter(pk=data["team-a"].pk).exists()


def test_secrets_cannot_be_added_or_changed_in_the_console(admin_client, data):
    secret = data["team-a"]
    assert admin_client.get(reverse("admin:secretstore_pipelinesecret_add")).status_code == 403
    assert admin_client.get(reverse("admin:secretstore_globalsecret_add")).status_code == 403
    response = admin_client.post(change_url(secret), {"key": "renamed", "value": "overwritten-by-the-console"})
    assert response.status_code == 403
    assert secrets.resolve_pipeline_secret(secret.pipeline, "deploy_key") == PLAIN_A
    assert not PipelineSecret.objects.filter(key="renamed").exists()


def test_secrets_can_be_searched_and_filtered_by_storage(admin_client, data, vault):
    pipeline = data["team-a"].pipeline
    secrets.put_pipeline_secret(pipeline, "in_vault", "value-kept-in-vault-only")
    listing = admin_client.get(changelist_url(PipelineSecret))
    assert results(listing) == ["team-a/deploy_key", "team-a/in_vault", "team-b/deploy_key"]
    page = listing.content.decode()
    assert "stored in Vault" in page and "stored in database (encrypted)" in page
    assert "value-kept-in-vault-only" not in page
    assert results(admin_client.get(changelist_url(PipelineSecret), {"storage": "vault"})) == ["team-a/in_vault"]
    assert results(admin_client.get(changelist_url(PipelineSecret), {"storage": "database"})) == [
        "team-a/deploy_key",
        "team-b/deploy_key",
    ]
    assert results(admin_client.get(changelist_url(PipelineSecret), {"q": "team-b"})) == ["team-b/deploy_key"]
    assert results(admin_client.get(changelist_url(GlobalSecret), {"q": "registry"})) == ["registry_password"]
    in_vault = PipelineSecret.objects.get(key="in_vault")
    detail = html(admin_client, change_url(in_vault))
    assert "stored in Vault" in detail and "value-kept-in-vault-only" not in detail


# --- deleting through the services ----------------------------------------------------------------------------------


def test_deleting_a_vault_secret_removes_the_row_and_the_vault_entry(admin_client, namespaces, vault):
    pipeline = deployed_pipeline("team-a")
    secret = secrets.put_pipeline_secret(pipeline, "token", "vault-held-value-123")
    path = "pipelines/team-a/build/token"
    assert vault.read(path) == "vault-held-value-123"
    confirm = html(admin_client, delete_url(secret))
    assert "vault-held-value-123" not in confirm

    response = admin_client.post(delete_url(secret), {"post": "yes"})
    assert response.status_code == 302
    assert not PipelineSecret.objects.filter(pk=secret.pk).exists()
    assert vault.read(path) is None  # only delete_pipeline_secret deletes the Vault entry with the row
    assert LogEntry.objects.filter(object_id=str(secret.pk), action_flag=DELETION).exists()


def test_deleting_a_global_secret_goes_through_the_service(admin_client, db, vault):
    secret = secrets.put_global_secret("shared", "global-vault-value-456", [".*"])
    assert vault.read("global/shared") == "global-vault-value-456"
    response = admin_client.post(delete_url(secret), {"post": "yes"})
    assert response.status_code == 302
    assert not GlobalSecret.objects.exists()
    assert vault.read("global/shared") is None


def test_a_delete_that_vault_refuses_keeps_the_secret_and_says_why(admin_client, namespaces, vault, settings):
    pipeline = deployed_pipeline("team-a")
    secret = secrets.put_pipeline_secret(pipeline, "token", "still-here-value")
    settings.GOFER_VAULT_ADDR = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backends.forget_clients()

    response = admin_client.post(delete_url(secret), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == change_url(secret)
    assert any("was not deleted" in m and "Vault" in m for m in messages_of(response))
    assert PipelineSecret.objects.filter(pk=secret.pk).exists()
    assert not LogEntry.objects.filter(object_id=str(secret.pk), action_flag=DELETION).exists()
    assert vault.read("pipelines/team-a/build/token") == "still-here-value"


def test_bulk_delete_goes_through_the_service_for_each_secret(admin_client, data, vault):
    pipeline = data["team-a"].pipeline
    in_vault = secrets.put_pipeline_secret(pipeline, "in_vault", "bulk-vault-value")
    selected = [data["team-a"].pk, in_vault.pk]
    confirm = admin_client.post(
        changelist_url(PipelineSecret), {"action": "delete_selected", "_selected_action": selected}
    )
    assert confirm.status_code == 200
    assert "bulk-vault-value" not in confirm.content.decode() and PLAIN_A not in confirm.content.decode()
    response = admin_client.post(
        changelist_url(PipelineSecret), {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    )
    assert response.status_code == 302
    assert any("Deleted 2 pipeline secrets" in m for m in messages_of(response))
    assert list(PipelineSecret.objects.values_list("key", "namespace_id")) == [("deploy_key", "team-b")]
    assert vault.read("pipelines/team-a/build/in_vault") is None


# --- tenancy ----------------------------------------------------------------------------------------------------------


def test_staff_with_a_team_a_role_sees_only_team_a_secrets(data):
    client = staff_client("ann", TEAM_A_READ)
    assert results(client.get(changelist_url(PipelineSecret))) == ["team-a/deploy_key"]
    listing = client.get(changelist_url(PipelineSecret)).content.decode()
    assert "team-b" not in listing
    assert client.get(change_url(data["team-a"])).status_code == 200
    for url in pages_of(data["team-b"])[1:]:
        assert client.get(url).status_code == 404, url
    # Global secrets are for superusers only, whatever the staff user's roles.
    assert client.get(changelist_url(GlobalSecret)).status_code == 403
    assert client.get(change_url(data["global"])).status_code == 403
    assert staff_client("nobody", None).get(changelist_url(PipelineSecret)).status_code == 403


def test_read_only_staff_cannot_delete_secrets(data):
    client = staff_client("ann", TEAM_A_READ)
    assert client.post(delete_url(data["team-a"]), {"post": "yes"}).status_code == 403
    assert PipelineSecret.objects.filter(pk=data["team-a"].pk).exists()


def test_staff_delete_only_inside_their_namespace(data):
    client = staff_client("ann", WRITES_A_READS_B)
    team_a, team_b = data["team-a"], data["team-b"]
    assert client.get(change_url(team_b)).status_code == 200  # visible, not deletable
    assert client.post(delete_url(team_b), {"post": "yes"}).status_code == 403
    response = client.post(
        changelist_url(PipelineSecret),
        {"action": "delete_selected", "_selected_action": [team_a.pk, team_b.pk], "post": "yes"},
    )
    assert any(f"do not allow you to delete 1 pipeline secret: {team_b}" in m for m in messages_of(response))
    assert list(PipelineSecret.objects.values_list("namespace_id", flat=True)) == ["team-b"]

    full = staff_client("fay", TEAM_A_FULL)
    assert full.get(change_url(team_b)).status_code == 404
