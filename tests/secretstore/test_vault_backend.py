"""The Vault backend against a real OpenBao dev server: paths, token and AppRole auth, failures, all-or-nothing."""

from __future__ import annotations

import logging

import pytest
from django.db import DatabaseError, connection, transaction

from pipelines import services as pipelines
from pipelines.models import Namespace
from secretstore import services
from secretstore.models import GlobalSecret, PipelineSecret
from secretstore.services import SecretNotFound, SecretStoreUnavailable
from tests.support.processes import free_port
from tests.support.secrets import GLOBAL, SECRETS, raw_column

pytestmark = pytest.mark.vault

VALUE = "vault-Held-Value-5150"
PATH = "pipelines/team-a/build/db_password"


@pytest.fixture
def build(team_a_pipeline):
    return team_a_pipeline


def put(caller, key="db_password", content=VALUE, **extra):
    return caller.post(SECRETS, {"key": key, "content": content, **extra})


# --- Token auth: where values land ------------------------------------------------------------------------------


def test_a_pipeline_secret_lands_in_vault_at_the_documented_path(vault, alice, build):
    assert put(alice).status_code == 201
    assert vault.read(PATH) == VALUE
    row = PipelineSecret.objects.defer("value").get(key="db_password")
    assert raw_column(PipelineSecret, "value", row.pk) is None


def test_the_value_is_read_back_from_vault(vault, alice, build):
    put(alice)
    response = alice.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 200
    assert response.json()["secret"] == VALUE
    assert [s["key"] for s in alice.get(SECRETS).json()["secrets"]] == ["db_password"]


def test_force_overwrites_in_vault_and_a_409_leaves_vault_alone(vault, alice, build):
    put(alice)
    assert put(alice, content="not-this-one").status_code == 409
    assert vault.read(PATH) == VALUE
    assert put(alice, content="second-value", force=True).status_code == 201
    assert vault.read(PATH) == "second-value"


def test_delete_removes_the_value_from_vault_and_the_row(vault, alice, build):
    put(alice)
    assert alice.delete(f"{SECRETS}/db_password").status_code == 204
    assert vault.read(PATH) is None
    assert not PipelineSecret.objects.exists()


def test_a_global_secret_lands_in_vault_under_global(vault, admin):
    response = admin.post(GLOBAL, {"key": "slack", "content": VALUE, "namespaces": [".*"]})
    assert response.status_code == 201
    assert vault.read("global/slack") == VALUE
    assert raw_column(GlobalSecret, "value", GlobalSecret.objects.defer("value").get().pk) is None
    assert admin.get(f"{GLOBAL}/slack", include_secret="true").json()["secret"] == VALUE
    assert services.resolve_global_secret("team-a", "slack") == VALUE
    assert admin.delete(f"{GLOBAL}/slack").status_code == 204
    assert vault.read("global/slack") is None


def test_resolution_reads_from_vault(vault, build):
    services.put_pipeline_secret(build, "db_password", VALUE)
    assert services.resolve_pipeline_secret(build, "db_password") == VALUE


def test_a_value_deleted_from_vault_behind_goferss_back_is_reported_missing(vault, alice, build):
    put(alice)
    vault.root.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{vault.prefix}/{PATH}", mount_point="secret")
    with pytest.raises(SecretNotFound, match="db_password"):
        services.resolve_pipeline_secret(build, "db_password")
    response = alice.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 404
    assert "missing from Vault" in response.json()["message"]
    # The stale row can still be deleted.
    assert alice.delete(f"{SECRETS}/db_password").status_code == 204


# --- Vault unavailable ----------------------------------------------------------------------------------------------


@pytest.fixture
def vault_down(vault, settings):
    """Gofer pointed at a port where nothing listens."""

    def switch() -> None:
        settings.GOFER_VAULT_ADDR = f"http://127.0.0.1:{free_port()}"

    return switch


def test_put_with_vault_down_is_503_naming_vault_and_writes_nothing(vault_down, alice, build, caplog):
    vault_down()
    caplog.set_level(logging.DEBUG)
    response = put(alice)
    assert response.status_code == 503
    assert response.json()["error_code"] == "unavailable"
    assert "Vault" in response.json()["message"]
    assert VALUE not in response.content.decode()
    assert VALUE not in caplog.text
    assert not PipelineSecret.objects.exists()


def test_reading_with_vault_down_is_503_and_resolution_says_unavailable(vault, vault_down, alice, build):
    put(alice)
    vault_down()
    response = alice.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 503
    assert "Vault" in response.json()["message"]
    # Metadata does not need Vault.
    assert alice.get(f"{SECRETS}/db_password").status_code == 200
    assert alice.get(SECRETS).status_code == 200
    with pytest.raises(SecretStoreUnavailable, match="db_password") as caught:
        services.resolve_pipeline_secret(build, "db_password")
    assert "Vault" in str(caught.value)


def test_delete_with_vault_down_is_503_and_deletes_nothing(vault, vault_down, alice, build):
    put(alice)
    vault_down()
    response = alice.delete(f"{SECRETS}/db_password")
    assert response.status_code == 503
    assert PipelineSecret.objects.filter(key="db_password").exists()


def test_a_token_vault_refuses_is_503_naming_the_setting(vault, settings, alice, build):
    settings.GOFER_VAULT_TOKEN = "not-a-real-token"
    response = put(alice)
    assert response.status_code == 503
    assert "GOFER_VAULT_TOKEN" in response.json()["message"]
    assert not PipelineSecret.objects.exists()


def test_vault_without_credentials_is_503_not_configured(vault, settings, alice, build):
    settings.GOFER_VAULT_TOKEN = ""
    response = put(alice)
    assert response.status_code == 503
    assert "not configured" in response.json()["message"]


def test_a_mount_without_kv_is_503_naming_the_mount(vault, settings, alice, build):
    settings.GOFER_VAULT_MOUNT = "no-such-mount"
    response = put(alice)
    assert response.status_code == 503
    assert "no-such-mount" in response.json()["message"]
    assert not PipelineSecret.objects.exists()


# --- Nothing half-written ---------------------------------------------------------------------------------------


@pytest.fixture
def refuse_secret_updates(db):
    """A real database failure after the Vault write: a trigger that refuses every UPDATE of a pipeline secret.

    Created inside the test's transaction, so it disappears with it.
    """

    def install() -> None:
        table = PipelineSecret._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE FUNCTION gofer_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER gofer_test_refuse BEFORE UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION gofer_test_refuse()"
                )
            else:
                cursor.execute(
                    f"CREATE TRIGGER gofer_test_refuse BEFORE UPDATE ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )

    return install


def test_a_failed_database_write_deletes_the_new_vault_entry(vault, build, refuse_secret_updates):
    refuse_secret_updates()
    with pytest.raises(DatabaseError):
        services.put_pipeline_secret(build, "db_password", VALUE)
    assert vault.read(PATH) is None
    assert not PipelineSecret.objects.filter(key="db_password").exists()


def test_a_failed_overwrite_restores_the_previous_vault_value(vault, build, refuse_secret_updates):
    services.put_pipeline_secret(build, "db_password", "first-value")
    refuse_secret_updates()
    with pytest.raises(DatabaseError):
        services.put_pipeline_secret(build, "db_password", "second-value", force=True)
    assert vault.read(PATH) == "first-value"


# --- Switching backends -------------------------------------------------------------------------------------------


def test_values_stay_readable_after_switching_back_to_the_database(
    vault, settings, build, django_capture_on_commit_callbacks
):
    services.put_pipeline_secret(build, "db_password", VALUE)
    settings.GOFER_SECRET_BACKEND = "database"
    assert services.resolve_pipeline_secret(build, "db_password") == VALUE
    with django_capture_on_commit_callbacks(execute=True):
        services.put_pipeline_secret(build, "db_password", "now-in-the-database", force=True)
    row = PipelineSecret.objects.defer("value").get(key="db_password")
    assert raw_column(PipelineSecret, "value", row.pk).startswith("gofer:v1:")
    assert vault.read(PATH) is None  # the stale Vault copy was deleted after the commit
    assert services.resolve_pipeline_secret(build, "db_password") == "now-in-the-database"


def test_a_database_value_moves_to_vault_on_overwrite(vault, settings, build):
    settings.GOFER_SECRET_BACKEND = "database"
    services.put_pipeline_secret(build, "db_password", "in-the-database")
    settings.GOFER_SECRET_BACKEND = "vault"
    assert services.resolve_pipeline_secret(build, "db_password") == "in-the-database"
    services.put_pipeline_secret(build, "db_password", VALUE, force=True)
    assert vault.read(PATH) == VALUE
    assert raw_column(PipelineSecret, "value", PipelineSecret.objects.defer("value").get().pk) is None


# --- Deleting a namespace or pipeline ---------------------------------------------------------------------------


def run_secretstore_callbacks(callbacks) -> None:
    """Run the secret store's after-commit work only: other apps' receivers are theirs to test."""
    mine = [c for c in callbacks if c.__module__.startswith("secretstore.")]
    assert mine, "the deletion scheduled no secret store work"
    for callback in mine:
        callback()


def test_deleting_a_namespace_removes_its_vault_entries(vault, admin, alice, build, django_capture_on_commit_callbacks):
    from tests.conftest import deployed_pipeline

    other = deployed_pipeline("team-a", "deploy")
    put(alice)
    services.put_pipeline_secret(other, "deploy_key", VALUE)
    services.put_global_secret("survivor", VALUE, [".*"])
    assert vault.read("pipelines/team-a/deploy/deploy_key") == VALUE
    with django_capture_on_commit_callbacks() as callbacks:
        assert admin.delete("/api/namespaces/team-a").status_code == 204
    assert vault.read(PATH) == VALUE  # nothing is deleted from Vault before the commit
    run_secretstore_callbacks(callbacks)
    assert vault.read(PATH) is None
    assert vault.read("pipelines/team-a/deploy/deploy_key") is None
    assert vault.read("global/survivor") == VALUE
    assert not PipelineSecret.objects.exists()


def test_deleting_a_pipeline_removes_only_its_vault_entries(vault, alice, build, django_capture_on_commit_callbacks):
    from tests.conftest import deployed_pipeline

    other = deployed_pipeline("team-a", "deploy")
    put(alice)
    services.put_pipeline_secret(other, "deploy_key", VALUE)
    with django_capture_on_commit_callbacks() as callbacks:
        assert alice.delete("/api/namespaces/team-a/pipelines/build").status_code == 204
    run_secretstore_callbacks(callbacks)
    assert vault.read(PATH) is None
    assert vault.read("pipelines/team-a/deploy/deploy_key") == VALUE


def test_a_namespace_deletion_that_rolls_back_keeps_the_vault_entries(vault, alice, build):
    put(alice)
    namespace = Namespace.objects.get(id="team-a")
    with pytest.raises(RuntimeError), transaction.atomic():
        pipelines.delete_namespace(namespace)
        raise RuntimeError("the surrounding work failed after the deletion")
    assert vault.read(PATH) == VALUE
    assert PipelineSecret.objects.filter(key="db_password").exists()


# --- AppRole ------------------------------------------------------------------------------------------------------


@pytest.fixture
def approle(vault, settings):
    """An AppRole whose policy covers this test's prefix only; Gofer then uses just its role_id and secret_id."""
    root = vault.root
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = f"gofer-{vault.prefix}"
    root.sys.create_or_update_policy(
        name=policy,
        policy=(
            f'path "secret/data/{vault.prefix}/*" {{ capabilities = ["create", "read", "update", "delete"] }}\n'
            f'path "secret/metadata/{vault.prefix}/*" {{ capabilities = ["read", "delete", "list"] }}\n'
        ),
    )
    root.auth.approle.create_or_update_approle(role_name=policy, token_policies=[policy], token_ttl="10m")
    role_id = root.auth.approle.read_role_id(role_name=policy)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role_name=policy)["data"]["secret_id"]
    settings.GOFER_VAULT_TOKEN = ""
    settings.GOFER_VAULT_ROLE_ID = role_id
    settings.GOFER_VAULT_SECRET_ID = secret_id
    return policy


def gofer_token_accessors(vault, policy: str) -> list[str]:
    root = vault.root
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    return [a for a in accessors if policy in root.auth.token.lookup_accessor(a)["data"].get("policies", [])]


def test_approle_credentials_alone_are_enough(vault, approle, alice, build):
    assert put(alice).status_code == 201
    assert vault.read(PATH) == VALUE
    assert alice.get(f"{SECRETS}/db_password", include_secret="true").json()["secret"] == VALUE
    assert alice.delete(f"{SECRETS}/db_password").status_code == 204
    assert vault.read(PATH) is None


def test_approle_logs_in_again_when_its_token_is_revoked(vault, approle, alice, build):
    assert put(alice).status_code == 201
    [first] = gofer_token_accessors(vault, approle)
    vault.root.auth.token.revoke_accessor(first)
    response = alice.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 200, response.content
    assert response.json()["secret"] == VALUE
    assert gofer_token_accessors(vault, approle) not in ([], [first])


def test_approle_outside_its_policy_is_503_naming_approle(vault, approle, settings, alice, build):
    settings.GOFER_VAULT_PREFIX = "somewhere-else"
    response = put(alice)
    assert response.status_code == 503
    assert "AppRole" in response.json()["message"]
    assert not PipelineSecret.objects.exists()


def test_a_wrong_secret_id_is_503(vault, approle, settings, alice, build):
    settings.GOFER_VAULT_SECRET_ID = "00000000-0000-0000-0000-000000000000"
    response = put(alice)
    assert response.status_code == 503
    assert "AppRole" in response.json()["message"]
