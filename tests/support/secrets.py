"""Helpers of the secret store tests: the secrets routes, and columns read as the database stores them."""

from __future__ import annotations

from django.db import connection

SECRETS = "/api/namespaces/team-a/pipelines/build/secrets"
GLOBAL = "/api/secrets/global"


def raw_column(model, column: str, pk) -> str | None:
    """A column as the database stores it, read with SQL: no model field gets a chance to decrypt it."""
    quote = connection.ops.quote_name
    # Identifiers come from model metadata and are quoted; the only value is a bound parameter.
    sql = f"SELECT {quote(column)} FROM {quote(model._meta.db_table)} WHERE id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        return cursor.fetchone()[0]
