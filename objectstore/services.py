"""The object store's operations: put, get, list and delete in three scopes, limits, expiry and clean-up.

Guarantees that hold for every scope:
- An upload is streamed: at most one chunk of it is in memory. Its bytes go to a fresh blob that becomes visible
  only when complete and durable; only then is the key record written (in a short transaction, never one that spans
  the upload). A failed, refused or interrupted upload leaves no record and no blob.
- ``GOFER_OBJECT_MAX_BYTES`` is enforced while streaming, and before reading a byte when the size is announced.
- A key that exists is never replaced unless ``force`` is true (409 otherwise); a forced put swaps the record to the
  new blob atomically, so a reader sees the old bytes or the new bytes, never a mix, and a download that has
  started finishes with the bytes it started with.
- Blobs of deleted records are deleted after the transaction commits: a rollback never loses bytes a record points
  at. (A crash between commit and delete leaves an unreferenced blob, which is harmless.)

Pipeline objects are also bound by ``GOFER_PIPELINE_OBJECT_LIMIT``: a put that takes the count above it evicts the
least recently stored objects. Run objects expire with ``expire_run_objects`` when a newer run is admitted
(``on_run_admitted``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from access import scope as access_scope
from access import services as access
from kernel.choices import Resource
from kernel.errors import Conflict, NotFound, ValidationFailed
from kernel.identifiers import check_identifier
from kernel.rbac import Principal
from objectstore.backends import CHUNK_SIZE, BlobNotFound, BlobReader, get_backend
from objectstore.errors import BodyTooLarge, ObjectNotFound, ObjectTooLarge, RunObjectsExpired
from objectstore.models import KEY_MAX_LENGTH, ExtensionObject, PipelineObject, RunObject, StoredObject
from pipelines import quotas
from pipelines.models import Namespace, Pipeline
from runs.choices import RunState
from runs.models import Run

logger = logging.getLogger(__name__)

# Deleting rows in slices keeps every IN (...) list under SQLite's and PostgreSQL's parameter limits.
_BATCH = 500


# --- keys -----------------------------------------------------------------------------------------------------------


def validate_key(key: object) -> str:
    """An object key: 1 to 256 characters; no ``/`` or ``\\``, no control characters (NUL included), no leading
    dot and no ``..`` (nothing that could mean a path to any storage layer), no leading or trailing whitespace
    (``pipeline_object{{ key }}`` trims it, so such a key could never be referenced). Raises a 400 naming ``key``.
    """
    if not isinstance(key, str) or not key:
        raise ValidationFailed("key: must be a non-empty string", field="key")
    if len(key) > KEY_MAX_LENGTH:
        raise ValidationFailed(f"key: must be at most {KEY_MAX_LENGTH} characters", field="key")
    if "/" in key or "\\" in key:
        raise ValidationFailed("key: may not contain '/' or '\\'", field="key")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise ValidationFailed("key: may not contain control characters", field="key")
    if key.startswith(".") or ".." in key:
        raise ValidationFailed("key: may not start with '.' or contain '..'", field="key")
    if key != key.strip():
        raise ValidationFailed("key: may not start or end with whitespace", field="key")
    return key


def validate_extension_id(extension_id: object) -> str:
    """Gofer's identifier rule (3 to 32 of ``[A-Za-z0-9-]``); a 400 naming ``extension_id`` otherwise."""
    return check_identifier(extension_id, "extension_id")


# --- scopes ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """One object namespace: its rows, how a new row is filled in, and how writers in it are serialised."""

    label: str
    model: type[StoredObject]
    lookup: dict[str, Any]
    new_row: dict[str, Any]
    # Takes the row lock that serialises writes in this scope, and re-checks that the scope still accepts writes.
    lock: Callable[[], None] = lambda: None
    # Runs inside the write transaction after a put, with the row just written.
    after_put: Callable[[StoredObject], None] = lambda row: None
    # Raises RunObjectsExpired when the scope's objects are gone for good (runs only).
    expired: Callable[[], None] = lambda: None
    # The namespace whose object_bytes quota the scope counts against (pipeline and run objects); None: no quota.
    namespace_id: str | None = None

    def rows(self) -> QuerySet:
        return self.model.objects.filter(**self.lookup)


def _pipeline_scope(pipeline: Pipeline) -> _Scope:
    def lock() -> None:
        if Pipeline.objects.select_for_update().filter(pk=pipeline.pk).only("pk").first() is None:
            raise NotFound.of("pipeline", pipeline.slug, field="pipeline_id")

    return _Scope(
        label="pipeline object",
        model=PipelineObject,
        lookup={"pipeline": pipeline},
        new_row={"namespace_id": pipeline.namespace_id, "pipeline": pipeline},
        lock=lock,
        after_put=lambda row: _evict_beyond_limit(pipeline, row),
        namespace_id=pipeline.namespace_id,
    )


def _run_scope(run: Run) -> _Scope:
    def expired() -> None:
        if run.store_objects_expired:
            raise _expired(run)

    def lock() -> None:
        current = Run.objects.select_for_update().filter(pk=run.pk).only("store_objects_expired").first()
        if current is None:
            raise NotFound.of("run", run.number, field="run_id")
        if current.store_objects_expired:
            raise _expired(run)

    return _Scope(
        label="run object",
        model=RunObject,
        lookup={"run": run},
        new_row={"namespace_id": run.namespace_id, "pipeline_id": run.pipeline_id, "run": run},
        lock=lock,
        expired=expired,
        namespace_id=run.namespace_id,
    )


def _extension_scope(extension_id: str) -> _Scope:
    extension_id = validate_extension_id(extension_id)
    return _Scope(
        label="extension object",
        model=ExtensionObject,
        lookup={"extension_id": extension_id},
        new_row={"extension_id": extension_id},
    )


def _expired(run: Run) -> RunObjectsExpired:
    return RunObjectsExpired(
        f"run {run.number}'s objects have expired: only the newest {settings.GOFER_RUN_OBJECT_EXPIRY} runs of a "
        "pipeline keep their objects (GOFER_RUN_OBJECT_EXPIRY)",
        field="run_id",
    )


# --- the generic operations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    name: str
    size: int
    sha256: str


@dataclass
class ObjectDownload:
    """An object opened for reading. Its bytes are pinned: a concurrent overwrite or delete does not cut them."""

    key: str
    size: int
    sha256: str
    created: datetime
    reader: BlobReader

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes, at most ``chunk_size`` at a time; the reader is closed at the end."""
        return self.reader.chunks(chunk_size)

    def close(self) -> None:
        self.reader.close()


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"body: the object is larger than the limit of {limit} bytes (GOFER_OBJECT_MAX_BYTES); nothing was stored",
        field="body",
    )


def _store_blob(chunks: Iterable[bytes] | bytes, content_length: int | None) -> _Blob:
    """Stream ``chunks`` into a new, committed blob. Raises BodyTooLarge or a 400 (short body) having stored nothing."""
    limit = settings.GOFER_OBJECT_MAX_BYTES
    if isinstance(chunks, bytes | bytearray | memoryview):
        # A whole value passed as one chunk; iterating it would give ints.
        chunks = [bytes(chunks)]
    digest = hashlib.sha256()
    size = 0
    with get_backend().open_writer() as writer:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            digest.update(chunk)
            writer.write(chunk)
        if content_length is not None and size != content_length:
            raise ValidationFailed(
                f"body: {size} bytes arrived but Content-Length announced {content_length}; nothing was stored",
                field="body",
            )
        writer.commit()
    return _Blob(writer.name, size, digest.hexdigest())


def _exists_message(scope: _Scope, key: str) -> str:
    return f"key: {scope.label} {key!r} already exists; pass force=true to overwrite it"


def _put(scope: _Scope, key: object, chunks: Iterable[bytes], force: bool, content_length: int | None) -> StoredObject:
    key = validate_key(key)
    scope.expired()
    limit = settings.GOFER_OBJECT_MAX_BYTES
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    # Checked again under the lock below; checking now too spares a client the upload of an object we would refuse.
    if not force and scope.rows().filter(key=key).exists():
        raise Conflict(_exists_message(scope, key), field="key")

    if content_length is not None:
        _check_object_bytes(scope, key, content_length, locked=False)

    blob = _store_blob(chunks, content_length)
    try:
        with transaction.atomic():
            _check_object_bytes(scope, key, blob.size, locked=True)
            scope.lock()
            row = scope.rows().select_for_update().filter(key=key).first()
            if row is not None and not force:
                raise Conflict(_exists_message(scope, key), field="key")
            if row is not None:
                _delete_blobs_on_commit([row.blob])
                row.blob, row.size, row.sha256, row.created = blob.name, blob.size, blob.sha256, timezone.now()
                row.save(update_fields=["blob", "size", "sha256", "created"])
            else:
                row = scope.model.objects.create(
                    **scope.new_row, key=key, blob=blob.name, size=blob.size, sha256=blob.sha256
                )
            scope.after_put(row)
    except IntegrityError:
        # Two first puts of one key raced (extension objects have no parent row to lock): one of them wins.
        get_backend().delete(blob.name)
        raise Conflict(f"key: {scope.label} {key!r} was written concurrently; retry", field="key") from None
    except BaseException:
        get_backend().delete(blob.name)
        raise
    return row


def namespace_object_bytes(namespace_id: str) -> int:
    """Bytes of the namespace's pipeline and run objects: the use of its ``object_bytes`` quota."""
    pipeline_bytes = PipelineObject.objects.filter(namespace_id=namespace_id).aggregate(n=Sum("size"))["n"] or 0
    run_bytes = RunObject.objects.filter(namespace_id=namespace_id).aggregate(n=Sum("size"))["n"] or 0
    return pipeline_bytes + run_bytes


def _check_object_bytes(scope: _Scope, key: str, size: int, *, locked: bool) -> None:
    """Refuse (403) an object that would take the namespace over its ``object_bytes`` quota (pipelines/quotas.py);
    an overwrite counts only what it adds. ``locked``: under the namespace lock (taken here, before the scope's own
    lock, in the order delete_namespace takes them), so two uploads at the limit cannot both pass; without it, an
    early refusal before a byte of an announced body is read."""
    if scope.namespace_id is None:
        return
    limits = quotas.lock(scope.namespace_id) if locked else quotas.quotas_of(scope.namespace_id)
    if limits.object_bytes is None:
        return
    replaced = scope.rows().filter(key=key).values_list("size", flat=True).first() or 0
    current = namespace_object_bytes(scope.namespace_id) - replaced
    quotas.check(limits, "object_bytes", current, adding=size, field="body", what=f"{size} more bytes")


def _row(scope: _Scope, key: str) -> StoredObject:
    row = scope.rows().filter(key=key).first()
    if row is None:
        raise ObjectNotFound(f"key: {scope.label} {key!r} not found", field="key")
    return row


def _open(scope: _Scope, key: str) -> ObjectDownload:
    scope.expired()
    backend = get_backend()
    # A forced put may swap the blob between reading the row and opening the blob; the second try sees the new row.
    for attempt in range(2):
        row = _row(scope, key)
        try:
            reader = backend.open_reader(row.blob)
        except BlobNotFound:
            if attempt == 0:
                continue
            logger.error("object store: %s %r (row %s) points at missing blob %s", scope.label, key, row.pk, row.blob)
            raise ObjectNotFound(
                f"key: the bytes of {scope.label} {key!r} are missing from the object store", field="key"
            ) from None
        return ObjectDownload(key=row.key, size=reader.size, sha256=row.sha256, created=row.created, reader=reader)
    raise AssertionError("unreachable")  # pragma: no cover


def _read(scope: _Scope, key: object, max_bytes: int) -> bytes:
    if not isinstance(key, str):
        raise ObjectNotFound(f"key: {scope.label} {key!r:.80} not found", field="key")
    try:
        validate_key(key)
    except ValidationFailed:
        # No object can have an invalid key; for the run engine, that is "not found", naming the key.
        raise ObjectNotFound(f"key: {scope.label} {key!r:.80} not found (not a valid key)", field="key") from None
    download = _open(scope, key)
    if download.size > max_bytes:
        download.close()
        raise ObjectTooLarge(
            f"key: {scope.label} {key!r} is {download.size} bytes, more than the {max_bytes} that can be read here",
            field="key",
        )
    return b"".join(download.chunks())


def _delete(scope: _Scope, key: object) -> None:
    key = validate_key(key)
    scope.expired()
    with transaction.atomic():
        row = scope.rows().select_for_update().filter(key=key).first()
        if row is None:
            raise ObjectNotFound(f"key: {scope.label} {key!r} not found", field="key")
        row.delete()
        _delete_blobs_on_commit([row.blob])


def _delete_blobs(names: list[str]) -> None:
    backend = get_backend()
    for name in names:
        try:
            backend.delete(name)
        except Exception:
            # The record is gone either way; a blob we failed to delete is only wasted space.
            logger.exception("object store: could not delete blob %s", name)


def _delete_blobs_on_commit(names: list[str]) -> None:
    if names:
        # robust: a failure here is logged and never stops the other apps' commit hooks (containers, log files).
        transaction.on_commit(lambda: _delete_blobs(list(names)), robust=True)


def _delete_rows(queryset: QuerySet) -> int:
    """Delete the rows of ``queryset`` and, once committed, their blobs. Returns how many."""
    rows = list(queryset.values_list("pk", "blob"))
    for start in range(0, len(rows), _BATCH):
        queryset.model.objects.filter(pk__in=[pk for pk, _ in rows[start : start + _BATCH]]).delete()
    _delete_blobs_on_commit([blob for _, blob in rows])
    return len(rows)


def _evict_beyond_limit(pipeline: Pipeline, written: StoredObject) -> None:
    """Keep at most GOFER_PIPELINE_OBJECT_LIMIT objects: the least recently stored go, never the one just written."""
    limit = settings.GOFER_PIPELINE_OBJECT_LIMIT
    rows = PipelineObject.objects.filter(pipeline=pipeline)
    excess = rows.count() - limit
    if excess <= 0:
        return
    victims = list(rows.exclude(pk=written.pk).order_by("created", "id").values_list("pk", "key", "blob")[:excess])
    PipelineObject.objects.filter(pk__in=[pk for pk, _, _ in victims]).delete()
    _delete_blobs_on_commit([blob for _, _, blob in victims])
    logger.info(
        "object store: %s evicted %s (GOFER_PIPELINE_OBJECT_LIMIT=%s)", pipeline, [k for _, k, _ in victims], limit
    )


# --- pipeline objects -----------------------------------------------------------------------------------------------


def list_pipeline_objects(pipeline: Pipeline) -> QuerySet:
    """The pipeline's object records (unordered; callers page them)."""
    return PipelineObject.objects.filter(pipeline=pipeline)


def put_pipeline_object(
    pipeline: Pipeline, key: object, chunks: Iterable[bytes], *, force: bool = False, content_length: int | None = None
) -> PipelineObject:
    """Store ``chunks`` under ``key`` (guarantees in the module docstring), then apply the pipeline's count limit.

    Raises ValidationFailed (key, or a body shorter/longer than ``content_length``), BodyTooLarge and Conflict.
    """
    return _put(_pipeline_scope(pipeline), key, chunks, force, content_length)


def open_pipeline_object(pipeline: Pipeline, key: object) -> ObjectDownload:
    """Open an object for streaming. Raises ValidationFailed (key) or ObjectNotFound. Close it (or exhaust chunks)."""
    return _open(_pipeline_scope(pipeline), validate_key(key))


def read_pipeline_object(pipeline: Pipeline, key: object, max_bytes: int) -> bytes:
    """The whole object, for ``pipeline_object{{key}}``. Raises ObjectNotFound or ObjectTooLarge (above ``max_bytes``),
    both naming the key; nothing above ``max_bytes`` is ever read into memory."""
    return _read(_pipeline_scope(pipeline), key, max_bytes)


def delete_pipeline_object(pipeline: Pipeline, key: object) -> None:
    """Delete an object (its blob once committed). Raises ValidationFailed (key) or ObjectNotFound."""
    _delete(_pipeline_scope(pipeline), key)


# --- run objects ----------------------------------------------------------------------------------------------------


def list_run_objects(run: Run) -> QuerySet:
    """The run's object records. Raises RunObjectsExpired (410) once they have expired."""
    _run_scope(run).expired()
    return RunObject.objects.filter(run=run)


def put_run_object(
    run: Run, key: object, chunks: Iterable[bytes], *, force: bool = False, content_length: int | None = None
) -> RunObject:
    """Like ``put_pipeline_object``, for one run (no count limit). Raises RunObjectsExpired once they expired."""
    return _put(_run_scope(run), key, chunks, force, content_length)


def open_run_object(run: Run, key: object) -> ObjectDownload:
    """Like ``open_pipeline_object``; raises RunObjectsExpired once the run's objects expired."""
    return _open(_run_scope(run), validate_key(key))


def read_run_object(run: Run, key: object, max_bytes: int) -> bytes:
    """The whole object, for ``run_object{{key}}``. Raises ObjectNotFound (RunObjectsExpired, a subclass, once the
    run's objects expired) or ObjectTooLarge, naming the key."""
    return _read(_run_scope(run), key, max_bytes)


def delete_run_object(run: Run, key: object) -> None:
    """Delete one run object. Raises ValidationFailed, ObjectNotFound or RunObjectsExpired."""
    _delete(_run_scope(run), key)


def expire_run_objects(pipeline: Pipeline) -> list[Run]:
    """Expire the run objects of every complete run outside the pipeline's newest ``GOFER_RUN_OBJECT_EXPIRY`` runs.

    Their object records go (blobs once committed) and ``store_objects_expired`` becomes true. Returns those runs
    (oldest first), so that the caller can revoke their tokens. Runs still pending or running are left alone and
    expire at a later call, once complete; each run is returned at most once over all calls.
    """
    keep = settings.GOFER_RUN_OBJECT_EXPIRY
    with transaction.atomic():
        newest = list(Run.objects.filter(pipeline=pipeline).order_by("-number").values_list("number", flat=True)[:keep])
        if len(newest) < keep:
            return []
        runs = list(
            Run.objects.select_for_update()
            .filter(pipeline=pipeline, number__lt=newest[-1], state=RunState.COMPLETE, store_objects_expired=False)
            .order_by("number")
        )
        for start in range(0, len(runs), _BATCH):
            batch = [run.pk for run in runs[start : start + _BATCH]]
            _delete_rows(RunObject.objects.filter(run_id__in=batch))
            Run.objects.filter(pk__in=batch).update(store_objects_expired=True)
        for run in runs:
            run.store_objects_expired = True
    return runs


# --- extension objects ----------------------------------------------------------------------------------------------


# The extension registry lives in the triggers app, above this one: it says which ids are installed
# (TriggersConfig.ready). Without it (triggers not installed) any valid id has a store.
_extension_registry: Callable[[str], bool] | None = None


def set_extension_registry(is_installed: Callable[[str], bool]) -> None:
    """Make ``is_installed(extension_id)`` decide which extensions have a store (called once, at start-up)."""
    global _extension_registry
    _extension_registry = is_installed


def check_extension_access(principal: Principal, extension_id: object, action: str) -> str:
    """The extension id, if ``principal`` may ``action`` objects of that extension (``extensions:<regex>`` matching
    it, with ``objects``; admins always) and the extension is installed. Raises ValidationFailed (bad id),
    Forbidden naming the permission, or NotFound naming ``extension_id``.
    """
    extension_id = validate_extension_id(extension_id)
    access_scope.require_extension(principal, extension_id, action, (Resource.OBJECTS,))
    if _extension_registry is not None and not _extension_registry(extension_id):
        raise NotFound.of("extension", extension_id, field="extension_id")
    return extension_id


def list_extension_objects(extension_id: str) -> QuerySet:
    return _extension_scope(extension_id).rows()


def put_extension_object(
    extension_id: str,
    key: object,
    chunks: Iterable[bytes],
    *,
    force: bool = False,
    content_length: int | None = None,
) -> ExtensionObject:
    """Like ``put_pipeline_object``, in an extension's store (no count limit)."""
    return _put(_extension_scope(extension_id), key, chunks, force, content_length)


def open_extension_object(extension_id: str, key: object) -> ObjectDownload:
    return _open(_extension_scope(extension_id), validate_key(key))


def delete_extension_object(extension_id: str, key: object) -> None:
    _delete(_extension_scope(extension_id), key)


def delete_extension_objects(extension_id: str) -> int:
    """Delete an extension's whole store (for uninstalling it). Returns how many objects went."""
    with transaction.atomic():
        return _delete_rows(_extension_scope(extension_id).rows())


# --- deletion of namespaces and pipelines ---------------------------------------------------------------------------


def on_run_admitted(sender: object, run: Run, **kwargs: Any) -> None:
    """A new run expires the objects of its pipeline's older runs, and revokes those runs' tokens with them."""
    for expired in expire_run_objects(run.pipeline):
        access.revoke_run_token(expired)


def on_namespace_deleting(sender: object, namespace: Namespace, **kwargs: Any) -> None:
    """``namespace_deleting`` receiver: the namespace's blobs go once the deletion commits (rows cascade)."""
    names = list(PipelineObject.objects.filter(namespace=namespace).values_list("blob", flat=True))
    names += RunObject.objects.filter(namespace=namespace).values_list("blob", flat=True)
    _delete_blobs_on_commit(names)


def on_pipeline_deleting(sender: object, pipeline: Pipeline, **kwargs: Any) -> None:
    """``pipeline_deleting`` receiver: the pipeline's and its runs' blobs go once the deletion commits."""
    names = list(PipelineObject.objects.filter(pipeline=pipeline).values_list("blob", flat=True))
    names += RunObject.objects.filter(pipeline=pipeline).values_list("blob", flat=True)
    _delete_blobs_on_commit(names)
