"""``manage.py rotate_encryption_key``: every encrypted column of every app moves to the current key."""

from __future__ import annotations

import base64
import io

import pytest
from django.core.management import CommandError, call_command

from kernel import encryption
from pipelines.models import Task
from secretstore import services
from secretstore.management.commands.rotate_encryption_key import encrypted_columns
from secretstore.models import GlobalSecret, PipelineSecret
from tests.conftest import deployed_pipeline, simple_config
from tests.support.secrets import raw_column
from triggers.models import Extension

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


def key_id(key: str) -> str:
    return encryption._keys_for(key)[0].key_id


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_encryption_key", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def written_with_key_a(settings, namespaces):
    """A pipeline secret, a global secret and a task's registry auth, all written with key A."""
    # The built-in extensions installed when the test database was migrated hold settings encrypted with the
    # session's own key, which none of these tests configures: without them, key A wrote everything there is.
    Extension.objects.all().delete()
    settings.GOFER_ENCRYPTION_KEY = KEY_A
    config = simple_config("build")
    config["tasks"][0]["registry_auth"] = {"user": "bot", "pass": "registry-pass"}
    pipeline = deployed_pipeline("team-a", "build", config)
    services.put_pipeline_secret(pipeline, "k_1", "pipeline-value")
    services.put_pipeline_secret(pipeline, "k_2", "second-value")
    services.put_global_secret("g_1", "global-value", [".*"])
    return pipeline


def test_the_command_finds_encrypted_columns_of_every_app():
    columns = {f"{model._meta.label}.{field.name}" for model, field in encrypted_columns()}
    assert {"pipelines.Task.registry_auth", "secretstore.PipelineSecret.value", "secretstore.GlobalSecret.value"} <= (
        columns
    )


def test_after_rotation_only_the_new_key_is_needed(settings, written_with_key_a):
    pipeline = written_with_key_a
    secret = PipelineSecret.objects.get(key="k_1")
    assert encryption.key_id_of(raw_column(PipelineSecret, "value", secret.pk)) == key_id(KEY_A)

    settings.GOFER_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    output = rotate()
    assert "secretstore.PipelineSecret.value: 2 scanned, 2 re-encrypted" in output
    assert "secretstore.GlobalSecret.value: 1 scanned, 1 re-encrypted" in output
    assert "pipelines.Task.registry_auth: 1 scanned, 1 re-encrypted" in output  # NULL columns are not scanned
    assert "pipeline-value" not in output

    settings.GOFER_ENCRYPTION_KEY = KEY_B
    assert services.resolve_pipeline_secret(pipeline, "k_1") == "pipeline-value"
    assert services.resolve_pipeline_secret(pipeline, "k_2") == "second-value"
    assert services.resolve_global_secret("team-a", "g_1") == "global-value"
    task = Task.objects.get(slug="compile")
    assert task.registry_auth == {"user": "bot", "pass": "registry-pass"}
    assert encryption.key_id_of(raw_column(Task, "registry_auth", task.pk)) == key_id(KEY_B)
    assert encryption.key_id_of(raw_column(GlobalSecret, "value", GlobalSecret.objects.get().pk)) == key_id(KEY_B)


def test_running_it_again_changes_nothing(settings, written_with_key_a):
    settings.GOFER_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    rotate()
    before = raw_column(PipelineSecret, "value", PipelineSecret.objects.get(key="k_1").pk)
    output = rotate()
    assert "done: 0 values re-encrypted" in output
    assert "secretstore.PipelineSecret.value: 2 scanned, 0 re-encrypted, 2 already current" in output
    assert raw_column(PipelineSecret, "value", PipelineSecret.objects.get(key="k_1").pk) == before


def test_small_batches_cover_every_row(settings, written_with_key_a):
    settings.GOFER_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    output = rotate("--batch-size", "1")
    assert "secretstore.PipelineSecret.value: 2 scanned, 2 re-encrypted" in output
    settings.GOFER_ENCRYPTION_KEY = KEY_B
    assert services.resolve_pipeline_secret(written_with_key_a, "k_2") == "second-value"


def test_dry_run_counts_without_writing(settings, written_with_key_a):
    settings.GOFER_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    output = rotate("--dry-run")
    assert "secretstore.PipelineSecret.value: 2 scanned, 2 would re-encrypt" in output
    secret = PipelineSecret.objects.get(key="k_1")
    assert encryption.key_id_of(raw_column(PipelineSecret, "value", secret.pk)) == key_id(KEY_A)


def test_values_no_key_can_decrypt_are_reported_and_left_alone(settings, written_with_key_a):
    pk = PipelineSecret.objects.get(key="k_1").pk
    before = raw_column(PipelineSecret, "value", pk)
    settings.GOFER_ENCRYPTION_KEY = KEY_B  # key A dropped too early
    with pytest.raises(CommandError, match="4 values could not be decrypted"):
        rotate()
    assert raw_column(PipelineSecret, "value", pk) == before


def test_a_bad_batch_size_is_refused(db):
    with pytest.raises(CommandError, match="batch-size"):
        rotate("--batch-size", "0")
