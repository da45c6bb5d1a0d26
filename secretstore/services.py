"""Pipeline and global secrets: every read and change of a secret goes through these functions.

Guarantees, for every function below:

- **Atomic, nothing half-written.** A change happens in one database transaction. When the value goes to Vault, the
  row is claimed first (so two concurrent puts of one key cannot both write Vault), Vault is written next, and if
  anything fails before the transaction commits the Vault write is undone (the previous value restored, or the
  entry deleted). A delete removes the row and the Vault entry together, or neither (503 if Vault cannot be
  reached).
- **No value leaks.** Values are never part of an exception message, a log line or an event; listings and metadata
  reads never even load (decrypt) the value column.
- **Errors name the field**: ``key``, ``content``, ``force``, ``namespaces[i]``, ``include_secret``.

Key rule: 1 to 128 characters of ``[A-Za-z0-9_.-]``, starting with a letter, a digit or ``_``. The first character
rule keeps ``.`` and ``..`` out of Vault paths (they would be path traversal there) and keys out of option syntax.

For the run engine: ``resolve_pipeline_secret`` and ``resolve_global_secret`` return plaintext values or raise a
``SecretResolutionError`` whose message names the key and the reason, never the value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from access import scope
from kernel import encryption
from kernel.choices import Action, Resource
from kernel.errors import Conflict, FieldError, Forbidden, NotFound, TooLarge, Unavailable, ValidationFailed
from kernel.rbac import Principal
from pipelines import quotas
from pipelines.models import Namespace, Pipeline
from secretstore.backends import (
    VAULT,
    SecretBackend,
    VaultBackend,
    backend_for_stored,
    configured_backend,
    global_secret_path,
    pipeline_secret_path,
)
from secretstore.models import KEY_MAX_LENGTH, GlobalSecret, PipelineSecret

logger = logging.getLogger(__name__)

KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
KEY_RULE = f"1 to {KEY_MAX_LENGTH} characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
MAX_NAMESPACE_PATTERNS = 100
MAX_NAMESPACE_PATTERN_LENGTH = 256


class ContentTooLarge(TooLarge):
    code = "content_too_large"


# --- Errors for the run engine ----------------------------------------------------------------------------------


class SecretResolutionError(Exception):
    """A secret reference could not be resolved. ``key`` is the key; the message says why and never holds a value."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class SecretNotFound(SecretResolutionError):
    """No secret with this key exists where it was looked up (or its stored value is gone)."""


class SecretNotAllowed(SecretResolutionError):
    """The global secret exists but its namespace regexes do not allow the namespace that asked for it."""


class SecretStoreUnavailable(SecretResolutionError):
    """The value could not be read now (Vault unreachable, or no configured key decrypts it). Retrying may help."""


# --- Validation -------------------------------------------------------------------------------------------------


def validate_key(key: object, field: str = "key") -> str:
    if not isinstance(key, str):
        raise ValidationFailed(f"{field}: required, a string of {KEY_RULE}", field=field)
    if not 1 <= len(key) <= KEY_MAX_LENGTH or not KEY_RE.fullmatch(key):
        raise ValidationFailed(f"{field}: must be {KEY_RULE}", field=field)
    return key


def validate_content(content: object) -> str:
    """The secret value: a non-empty string of at most GOFER_SECRET_MAX_BYTES bytes in UTF-8 (413 beyond)."""
    if not isinstance(content, str):
        raise ValidationFailed("content: required, the secret value as a string", field="content")
    if content == "":
        # An empty secret is almost always an unset variable on the client side; refusing it surfaces the mistake.
        raise ValidationFailed("content: must not be empty", field="content")
    limit = settings.GOFER_SECRET_MAX_BYTES
    if len(content.encode("utf-8")) > limit:
        raise ContentTooLarge(f"content: larger than the limit of {limit} bytes", field="content")
    return content


def validate_force(force: object) -> bool:
    if force is None:
        return False
    if not isinstance(force, bool):
        raise ValidationFailed("force: must be true or false", field="force")
    return force


def validate_namespace_patterns(patterns: object) -> list[str]:
    """The regexes (Python ``re.search``) of namespaces allowed to use a global secret; each must compile."""
    if not isinstance(patterns, list):
        raise ValidationFailed(
            'namespaces: required, a list of namespace regexes (["^prod$"], or [".*"] for every namespace)',
            field="namespaces",
        )
    if not patterns:
        raise ValidationFailed("namespaces: must list at least one namespace regex", field="namespaces")
    if len(patterns) > MAX_NAMESPACE_PATTERNS:
        raise ValidationFailed(f"namespaces: at most {MAX_NAMESPACE_PATTERNS} regexes", field="namespaces")
    errors = []
    for index, pattern in enumerate(patterns):
        field = f"namespaces[{index}]"
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_NAMESPACE_PATTERN_LENGTH:
            errors.append(
                FieldError(field, f"must be a non-empty regex of at most {MAX_NAMESPACE_PATTERN_LENGTH} chars")
            )
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(FieldError(field, f"is not a valid regex: {exc}"))
    if errors:
        raise ValidationFailed.from_errors(errors)
    return list(dict.fromkeys(patterns))


def namespace_allowed(patterns: list[str], namespace_id: str) -> bool:
    """Whether one of ``patterns`` matches ``namespace_id`` (``re.search``); a stored regex that no longer compiles
    matches nothing rather than failing every run."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            continue
        try:
            if re.search(pattern, namespace_id):
                return True
        except re.error:
            continue
    return False


# --- Storing: the one write path shared by pipeline and global secrets --------------------------------------------

Undo = Callable[[], object]


@contextmanager
def _all_or_nothing() -> Iterator[list[Undo]]:
    """A transaction whose Vault writes (each registering its undo in the yielded list) are undone if the block, or
    its commit, fails. Undo failures are logged with the path only; the original error is what the caller sees."""
    undos: list[Undo] = []
    try:
        with transaction.atomic():
            yield undos
    except BaseException:
        for undo in reversed(undos):
            try:
                undo()
            except Exception as exc:
                logger.error("could not undo a Vault write (%s); Vault may hold a value Gofer does not", exc)
        raise


def _stored_in_vault(model: type[PipelineSecret] | type[GlobalSecret], pk: int) -> bool:
    # Asked of the column directly so that the value is never loaded (nor decrypted) just to learn where it lives.
    return model.objects.filter(pk=pk, value__isnull=True).exists()


def _write_value(
    row: PipelineSecret | GlobalSecret, path: str, content: str, *, existed: bool, undos: list[Undo]
) -> None:
    """Write ``content`` for a row locked (or just inserted) in the current transaction, with the configured backend.

    A Vault write registers how to undo it: restore the previous Vault value, or delete the entry. A value moving
    out of Vault (the backend was switched to database) has its stale Vault copy deleted once the commit is done.
    """
    backend = configured_backend()
    previously_in_vault = existed and _stored_in_vault(type(row), row.pk)
    if backend.name == VAULT:
        previous = _read_current(backend, path) if previously_in_vault else None
        if previous is not None:
            undos.append(lambda: backend.put(path, previous))
        else:
            undos.append(lambda: backend.delete(path))
    row.value = backend.put(path, content)
    row.modified = timezone.now()
    row.save(update_fields=["value", "modified"])
    if previously_in_vault and backend.name != VAULT:
        transaction.on_commit(lambda: _delete_quietly(VaultBackend(), [path], "it moved to Gofer's database"))


def _read_current(backend: SecretBackend, path: str) -> str | None:
    """The value Vault holds for ``path`` now (to restore it if the write must be undone); None if there is none."""
    try:
        return backend.get(path, None)
    except NotFound:
        return None


def _delete_quietly(backend: SecretBackend, paths: list[str], why: str) -> None:
    """Delete values after a commit; failures are logged with the path (never a value) for an operator to clean up."""
    for path in paths:
        try:
            backend.delete(path)
        except Unavailable as exc:
            logger.warning("could not delete secret %s from Vault after %s: %s", path, why, exc.message)


# --- Pipeline secrets -----------------------------------------------------------------------------------------------


def _pipeline_path(pipeline: Pipeline, key: str) -> str:
    return pipeline_secret_path(pipeline.namespace_id, pipeline.slug, key)


def put_pipeline_secret(pipeline: Pipeline, key: object, content: object, force: object = False) -> PipelineSecret:
    """Store a pipeline secret. Conflict (409) if ``key`` exists and ``force`` is not true; ``force`` overwrites.

    Validates before touching anything; stores the value with the configured backend; all or nothing.
    """
    key = validate_key(key)
    content = validate_content(content)
    force = validate_force(force)
    path = _pipeline_path(pipeline, key)
    with _all_or_nothing() as undos:
        # The namespace lock first (pipelines/quotas.py): two new secrets at the limit cannot both pass.
        limits = quotas.lock(pipeline.namespace_id)
        row = PipelineSecret.objects.select_for_update().filter(pipeline=pipeline, key=key).defer("value").first()
        existed = row is not None
        if row is not None and not force:
            raise Conflict(
                f"key: secret {key} already exists in this pipeline; send force=true to overwrite", field="key"
            )
        if row is None:
            quotas.check(limits, "secrets", count_namespace_secrets(pipeline.namespace_id), field="key", what=key)
            row = PipelineSecret(namespace_id=pipeline.namespace_id, pipeline=pipeline, key=key, value=None)
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                raise Conflict(f"key: secret {key} was just created by another request", field="key") from None
        _write_value(row, path, content, existed=existed, undos=undos)
    logger.info("stored pipeline secret %s", path)
    return row


def count_namespace_secrets(namespace_id: str) -> int:
    """The namespace's pipeline secrets: the use of its ``secrets`` quota."""
    return PipelineSecret.objects.filter(namespace_id=namespace_id).count()


def pipeline_secrets(pipeline: Pipeline) -> QuerySet[PipelineSecret]:
    """The pipeline's secrets, metadata only: the value column is not loaded."""
    return PipelineSecret.objects.filter(pipeline=pipeline).defer("value")


def get_pipeline_secret(pipeline: Pipeline, key: str) -> PipelineSecret:
    """One secret's metadata (value not loaded). NotFound (404, field ``key``) if the pipeline has no such key."""
    secret = pipeline_secrets(pipeline).filter(key=key).first()
    if secret is None:
        raise NotFound.of("secret", key, field="key")
    return secret


def may_reveal_pipeline_secrets(principal: Principal, pipeline: Pipeline) -> bool:
    """Whether ``principal`` may read the values of ``pipeline``'s secrets: *write* on secrets there (a read-only
    member may list key names, never read values). Run variables that reference them need the same
    (runs/services.py::check_run_variables)."""
    return scope.may_on_pipeline(principal, pipeline, Action.WRITE, (Resource.SECRETS,))


def may_reveal_global_secrets(principal: Principal) -> bool:
    """Whether ``principal`` may read global secrets' values: admins only, as every global secret route."""
    return principal.is_admin


def require_reveal_permission(principal: Principal, pipeline: Pipeline) -> None:
    """Reading a value needs *write* on secrets: a read-only member may list key names, never read values."""
    if not may_reveal_pipeline_secrets(principal, pipeline):
        raise Forbidden(
            "include_secret: reading a secret's value needs write permission on secrets; this token may only list "
            "and read metadata",
            field="include_secret",
        )


def reveal_pipeline_secret(principal: Principal, pipeline: Pipeline, key: str) -> tuple[PipelineSecret, str]:
    """The secret's metadata and plaintext, for a principal with write on secrets (Forbidden otherwise).

    The permission is checked before the key is even looked up. NotFound if the key does not exist, Unavailable
    (503) if Vault cannot be reached or no configured encryption key decrypts the value.
    """
    require_reveal_permission(principal, pipeline)
    secret = get_pipeline_secret(pipeline, key)
    return secret, _read_value(PipelineSecret, secret.pk, _pipeline_path(pipeline, key))


def delete_pipeline_secret(pipeline: Pipeline, key: str) -> None:
    """Delete a secret from the database and from Vault together. NotFound if missing; 503 (nothing deleted) if the
    value lives in Vault and Vault cannot be reached."""
    with transaction.atomic():
        row = PipelineSecret.objects.select_for_update().filter(pipeline=pipeline, key=key).defer("value").first()
        if row is None:
            raise NotFound.of("secret", key, field="key")
        in_vault = _stored_in_vault(PipelineSecret, row.pk)
        row.delete()
        if in_vault:
            VaultBackend().delete(_pipeline_path(pipeline, key))
    logger.info("deleted pipeline secret %s", _pipeline_path(pipeline, key))


# --- Global secrets -------------------------------------------------------------------------------------------------


def put_global_secret(key: object, content: object, namespaces: object, force: object = False) -> GlobalSecret:
    """Store a global secret usable from the namespaces matching ``namespaces``. Conflict without ``force`` if the key
    exists; with ``force`` both the value and the namespace list are replaced. All or nothing."""
    key = validate_key(key)
    content = validate_content(content)
    patterns = validate_namespace_patterns(namespaces)
    force = validate_force(force)
    path = global_secret_path(key)
    with _all_or_nothing() as undos:
        row = GlobalSecret.objects.select_for_update().filter(key=key).defer("value").first()
        existed = row is not None
        if row is not None and not force:
            raise Conflict(f"key: global secret {key} already exists; send force=true to overwrite", field="key")
        if row is None:
            row = GlobalSecret(key=key, namespaces=patterns, value=None)
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                raise Conflict(f"key: global secret {key} was just created by another request", field="key") from None
        else:
            row.namespaces = patterns
            row.save(update_fields=["namespaces"])
        _write_value(row, path, content, existed=existed, undos=undos)
    logger.info("stored global secret %s", path)
    return row


def global_secrets() -> QuerySet[GlobalSecret]:
    """Every global secret, metadata only."""
    return GlobalSecret.objects.defer("value")


def get_global_secret(key: str) -> GlobalSecret:
    secret = global_secrets().filter(key=key).first()
    if secret is None:
        raise NotFound.of("global secret", key, field="key")
    return secret


def reveal_global_secret(key: str) -> tuple[GlobalSecret, str]:
    """Metadata and plaintext of a global secret (the route is admin-only). NotFound, or Unavailable (503)."""
    secret = get_global_secret(key)
    return secret, _read_value(GlobalSecret, secret.pk, global_secret_path(key))


def delete_global_secret(key: str) -> None:
    """Delete a global secret from the database and Vault together; NotFound if missing, 503 if Vault is down."""
    with transaction.atomic():
        row = GlobalSecret.objects.select_for_update().filter(key=key).defer("value").first()
        if row is None:
            raise NotFound.of("global secret", key, field="key")
        in_vault = _stored_in_vault(GlobalSecret, row.pk)
        row.delete()
        if in_vault:
            VaultBackend().delete(global_secret_path(key))
    logger.info("deleted global secret %s", global_secret_path(key))


# --- Reading values -------------------------------------------------------------------------------------------------


def _read_value(model: type[PipelineSecret] | type[GlobalSecret], pk: int, path: str) -> str:
    """Load and decrypt (or fetch from Vault) one value. Unavailable when no configured key decrypts it."""
    try:
        found = list(model.objects.filter(pk=pk).values_list("value", flat=True))
    except encryption.DecryptionError:
        raise Unavailable(
            f"secret {path} cannot be decrypted with the configured GOFER_ENCRYPTION_KEY (was an old key removed "
            "before running rotate_encryption_key?)"
        ) from None
    if not found:
        # Deleted between the metadata read and this one.
        raise NotFound(f"secret {path} not found", field="key")
    stored = found[0]
    return backend_for_stored(stored).get(path, stored)


def resolve_pipeline_secret(pipeline: Pipeline, key: str) -> str:
    """The plaintext of ``pipeline``'s secret ``key``, for ``pipeline_secret{{key}}``.

    Only this pipeline's secrets are visible: another pipeline's key simply does not exist here. Raises
    SecretNotFound (no such key, or its Vault value is gone) or SecretStoreUnavailable (Vault down, undecryptable).
    """
    where = f"pipeline {pipeline.namespace_id}/{pipeline.slug}"
    if not isinstance(key, str) or not KEY_RE.fullmatch(key) or len(key) > KEY_MAX_LENGTH:
        raise SecretNotFound(str(key), f"pipeline secret {str(key)!r:.140} does not exist: not a valid secret key")
    pk = PipelineSecret.objects.filter(pipeline=pipeline, key=key).values_list("pk", flat=True).first()
    if pk is None:
        raise SecretNotFound(key, f"pipeline secret {key!r} does not exist in {where}")
    return _resolve(key, f"pipeline secret {key!r} of {where}", PipelineSecret, pk, _pipeline_path(pipeline, key))


def resolve_global_secret(namespace_id: str | Namespace, key: str) -> str:
    """The plaintext of global secret ``key`` for a run in ``namespace_id``, for ``global_secret{{key}}``.

    The secret's namespace regexes are checked again here, at use time, whatever was checked when the config was
    registered. Raises SecretNotFound, SecretNotAllowed (the namespace does not match) or SecretStoreUnavailable.
    """
    if isinstance(namespace_id, Namespace):
        namespace_id = namespace_id.id
    if not isinstance(key, str) or not KEY_RE.fullmatch(key) or len(key) > KEY_MAX_LENGTH:
        raise SecretNotFound(str(key), f"global secret {str(key)!r:.140} does not exist: not a valid secret key")
    row = GlobalSecret.objects.filter(key=key).values("pk", "namespaces").first()
    if row is None:
        raise SecretNotFound(key, f"global secret {key!r} does not exist")
    if not namespace_allowed(row["namespaces"] or [], namespace_id):
        raise SecretNotAllowed(
            key,
            f"global secret {key!r} may not be used in namespace {namespace_id!r}: none of its namespace regexes "
            "matches it (an admin can add one)",
        )
    return _resolve(key, f"global secret {key!r}", GlobalSecret, row["pk"], global_secret_path(key))


def _resolve(key: str, what: str, model: type[PipelineSecret] | type[GlobalSecret], pk: int, path: str) -> str:
    try:
        return _read_value(model, pk, path)
    except NotFound:
        raise SecretNotFound(key, f"{what} has no value: it is missing from the secret store") from None
    except Unavailable as exc:
        raise SecretStoreUnavailable(key, f"{what} cannot be read now: {exc.message}") from None


# --- Deleting what a namespace or pipeline takes with it ------------------------------------------------------------


def vault_paths_of(secrets: QuerySet[PipelineSecret]) -> list[str]:
    """The Vault paths of those secrets whose value lives in Vault (read without decrypting anything)."""
    rows = secrets.filter(value__isnull=True).values_list("namespace_id", "pipeline__slug", "key")
    return [pipeline_secret_path(ns, slug, key) for ns, slug, key in rows]


def release_vault_entries_on_commit(paths: list[str], why: str) -> None:
    """Once the current transaction commits, delete those Vault entries (rows cascade away with their owner).

    After the commit, not before: if the deletion rolls back, the secrets must still have their values. A Vault
    failure then leaves an orphan entry, logged with its path (never its value) for an operator to remove.
    """
    if paths:
        transaction.on_commit(lambda: _delete_quietly(VaultBackend(), paths, why))
