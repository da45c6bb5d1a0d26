"""Re-encrypt every encrypted column with the current (first) key of GOFER_ENCRYPTION_KEY.

Rotation: put the new key first and keep the old ones (``GOFER_ENCRYPTION_KEY=new,old``), restart, run this command,
then drop the old key. The command finds every ``EncryptedTextField`` / ``EncryptedJSONField`` of every installed
model through the app registry, so a column added by any app is covered without being listed here. It reads the raw
column (never the decrypted attribute) and rewrites only the rows written by another key, in batches, each batch in
its own transaction; running it again changes nothing. Plaintext is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models.functions import Cast
from django.db.models.lookups import Exact

from kernel import encryption
from kernel.fields import EncryptedTextField

RAW = "_gofer_raw_ciphertext"


@dataclass
class ColumnReport:
    label: str
    scanned: int = 0
    reencrypted: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)


def encrypted_columns() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every (model, field) of the project whose column holds Gofer ciphertext."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField):
                found.append((model, model_field))
    return found


def _raw(model_field: EncryptedTextField) -> Cast:
    # The column as plain text: through the encrypted field itself every read would decrypt it.
    return Cast(model_field.attname, output_field=models.TextField())


def rotate_column(
    model: type[models.Model], model_field: EncryptedTextField, *, batch_size: int, dry_run: bool
) -> ColumnReport:
    """Re-encrypt one column's rows written by another key; returns the counts (and the rows that failed)."""
    report = ColumnReport(f"{model._meta.label}.{model_field.name}")
    context = model_field.crypto_context
    manager = model._base_manager
    last_pk: Any = None
    while True:
        queryset = manager.annotate(**{RAW: _raw(model_field)}).filter(**{f"{model_field.attname}__isnull": False})
        if last_pk is not None:
            queryset = queryset.filter(pk__gt=last_pk)
        batch = list(queryset.order_by("pk").values_list("pk", RAW)[:batch_size])
        if not batch:
            return report
        last_pk = batch[-1][0]
        with transaction.atomic():
            for pk, raw in batch:
                report.scanned += 1
                if not raw or not encryption.needs_reencryption(raw):
                    report.current += 1
                    continue
                try:
                    plaintext = encryption.decrypt(raw, context)
                except encryption.DecryptionError as exc:
                    report.failed.append(f"{report.label} pk={pk}: {exc}")
                    continue
                if dry_run:
                    report.reencrypted += 1
                    continue
                fresh = encryption.encrypt(plaintext, context)
                # Only if the row still holds what was read: a concurrent write already used the current key.
                updated = (
                    manager.filter(pk=pk)
                    .filter(Exact(_raw(model_field), models.Value(raw, output_field=models.TextField())))
                    .update(**{model_field.attname: models.Value(fresh, output_field=models.TextField())})
                )
                if updated:
                    report.reencrypted += 1
                else:
                    report.current += 1


class Command(BaseCommand):
    help = "Re-encrypt every encrypted column with the first key of GOFER_ENCRYPTION_KEY (run after adding a key)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted; write nothing.")

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        current = encryption.current_key_id()
        self.stdout.write(f"current key id: {current}{' (dry run: nothing is written)' if dry_run else ''}")
        failures: list[str] = []
        total = 0
        for model, model_field in encrypted_columns():
            report = rotate_column(model, model_field, batch_size=batch_size, dry_run=dry_run)
            total += report.reencrypted
            failures += report.failed
            verb = "would re-encrypt" if dry_run else "re-encrypted"
            self.stdout.write(
                f"{report.label}: {report.scanned} scanned, {report.reencrypted} {verb}, "
                f"{report.current} already current, {len(report.failed)} failed"
            )
        for failure in failures:
            self.stderr.write(failure)
        if failures:
            raise CommandError(
                f"{len(failures)} values could not be decrypted by any configured key; they were left as they are"
            )
        self.stdout.write(self.style.SUCCESS(f"done: {total} values {'to re-encrypt' if dry_run else 're-encrypted'}"))
