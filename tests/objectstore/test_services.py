"""The object store's services: what the run engine calls, run-object expiry, atomicity of puts, and clean-up."""

from __future__ import annotations

import pytest

from kernel.errors import Conflict, ValidationFailed
from objectstore import services
from objectstore.errors import BodyTooLarge, ObjectNotFound, ObjectTooLarge, RunObjectsExpired
from objectstore.models import PipelineObject, RunObject
from pipelines import services as pipelines
from runs.choices import RunState
from runs.models import Run
from tests.support.objects import blob_files, start_run


def put(pipeline, key: str, data: bytes, **kwargs):
    return services.put_pipeline_object(pipeline, key, [data], **kwargs)


# --- reads for interpolation ----------------------------------------------------------------------------------------


def test_read_pipeline_object_returns_the_bytes(pipeline):
    put(pipeline, "version", b"1.4.2")

    assert services.read_pipeline_object(pipeline, "version", max_bytes=100) == b"1.4.2"


def test_read_pipeline_object_of_a_missing_key_raises_not_found_naming_the_key(pipeline):
    with pytest.raises(ObjectNotFound, match="'missing-key'"):
        services.read_pipeline_object(pipeline, "missing-key", max_bytes=100)


def test_read_pipeline_object_of_an_invalid_key_is_not_found_rather_than_a_validation_error(pipeline):
    with pytest.raises(ObjectNotFound, match=r"'\.\./etc'"):
        services.read_pipeline_object(pipeline, "../etc", max_bytes=100)


def test_read_pipeline_object_above_max_bytes_raises_too_large_naming_the_key(pipeline):
    put(pipeline, "blob", b"x" * 11)

    with pytest.raises(ObjectTooLarge, match="'blob' is 11 bytes, more than the 10"):
        services.read_pipeline_object(pipeline, "blob", max_bytes=10)


def test_read_pipeline_object_reads_only_its_pipeline(pipeline, namespaces):
    from tests.conftest import deployed_pipeline

    other = deployed_pipeline("team-b")
    put(other, "token", b"team-b's")

    with pytest.raises(ObjectNotFound):
        services.read_pipeline_object(pipeline, "token", max_bytes=100)


def test_read_run_object_returns_the_bytes_of_that_run(pipeline):
    first, second = start_run(pipeline), start_run(pipeline)
    services.put_run_object(first, "out", [b"one"])
    services.put_run_object(second, "out", [b"two"])

    assert services.read_run_object(second, "out", max_bytes=10) == b"two"
    with pytest.raises(ObjectTooLarge, match="'out'"):
        services.read_run_object(first, "out", max_bytes=2)
    with pytest.raises(ObjectNotFound, match="'nope'"):
        services.read_run_object(first, "nope", max_bytes=10)


def test_read_run_object_of_an_expired_run_raises_objects_expired_which_is_a_not_found(pipeline, settings):
    settings.GOFER_RUN_OBJECT_EXPIRY = 1
    first = start_run(pipeline)
    services.put_run_object(first, "out", [b"one"])
    start_run(pipeline)
    services.expire_run_objects(pipeline)
    first.refresh_from_db()

    with pytest.raises(RunObjectsExpired) as raised:
        services.read_run_object(first, "out", max_bytes=10)
    assert isinstance(raised.value, ObjectNotFound)


# --- run-object expiry ----------------------------------------------------------------------------------------------


def test_with_expiry_2_the_first_of_3_complete_runs_loses_its_objects(
    pipeline, settings, django_capture_on_commit_callbacks
):
    settings.GOFER_RUN_OBJECT_EXPIRY = 2
    runs = [start_run(pipeline) for _ in range(3)]
    for run in runs:
        services.put_run_object(run, "artifact", [f"run {run.number}".encode()])
    first_blob = RunObject.objects.get(run=runs[0]).blob

    with django_capture_on_commit_callbacks(execute=True):
        expired = services.expire_run_objects(pipeline)

    assert [run.number for run in expired] == [1]
    assert expired[0].store_objects_expired is True
    assert list(
        Run.objects.filter(pipeline=pipeline).order_by("number").values_list("store_objects_expired", flat=True)
    ) == [True, False, False]
    assert sorted(RunObject.objects.values_list("run__number", flat=True)) == [2, 3]
    assert all(first_blob not in str(path) for path in blob_files())
    assert len(blob_files()) == 2


def test_expiry_does_nothing_while_there_are_fewer_runs_than_it_keeps(pipeline, settings):
    settings.GOFER_RUN_OBJECT_EXPIRY = 2
    run = start_run(pipeline)
    services.put_run_object(run, "artifact", [b"x"])
    start_run(pipeline)

    assert services.expire_run_objects(pipeline) == []
    assert RunObject.objects.count() == 1


def test_a_run_still_running_outside_the_window_expires_later_once_complete_and_only_once(pipeline, settings):
    settings.GOFER_RUN_OBJECT_EXPIRY = 1
    slow = start_run(pipeline, complete=False)
    services.put_run_object(slow, "artifact", [b"x"])
    start_run(pipeline)

    assert services.expire_run_objects(pipeline) == []
    assert RunObject.objects.filter(run=slow).exists()

    Run.objects.filter(pk=slow.pk).update(state=RunState.COMPLETE)
    assert [run.number for run in services.expire_run_objects(pipeline)] == [1]
    assert services.expire_run_objects(pipeline) == []
    assert not RunObject.objects.filter(run=slow).exists()


def test_every_complete_run_outside_the_window_expires_even_without_objects(pipeline, settings):
    settings.GOFER_RUN_OBJECT_EXPIRY = 2
    for _ in range(5):
        start_run(pipeline)

    assert [run.number for run in services.expire_run_objects(pipeline)] == [1, 2, 3]


def test_expiry_is_per_pipeline(pipeline, namespaces, settings):
    from tests.conftest import deployed_pipeline

    settings.GOFER_RUN_OBJECT_EXPIRY = 1
    other = deployed_pipeline("team-a", "other")
    services.put_run_object(start_run(other), "artifact", [b"x"])
    start_run(pipeline)
    start_run(pipeline)

    assert [r.number for r in services.expire_run_objects(pipeline)] == [1]
    assert RunObject.objects.filter(pipeline=other).count() == 1


# --- puts: all or nothing -------------------------------------------------------------------------------------------


def test_a_put_whose_body_fails_midway_leaves_no_record_and_no_file(pipeline, object_dir):
    def broken_body():
        yield b"first part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        services.put_pipeline_object(pipeline, "half", broken_body())

    assert not PipelineObject.objects.exists()
    assert blob_files() == []


def test_the_size_limit_stops_reading_a_stream_without_content_length(pipeline, settings):
    settings.GOFER_OBJECT_MAX_BYTES = 10
    consumed = []

    def body():
        for index in range(100):
            consumed.append(index)
            yield b"1234"

    with pytest.raises(BodyTooLarge, match="larger than the limit of 10 bytes"):
        services.put_pipeline_object(pipeline, "big", body())

    assert len(consumed) == 3
    assert not PipelineObject.objects.exists()
    assert blob_files() == []


def test_an_announced_size_over_the_limit_is_refused_before_reading_anything(pipeline, settings):
    settings.GOFER_OBJECT_MAX_BYTES = 10

    def body():
        raise AssertionError("the body must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(BodyTooLarge):
        services.put_pipeline_object(pipeline, "big", body(), content_length=11)
    assert blob_files() == []


def test_a_body_shorter_than_its_content_length_is_refused_and_not_stored(pipeline):
    with pytest.raises(ValidationFailed, match="3 bytes arrived but Content-Length announced 5") as raised:
        services.put_pipeline_object(pipeline, "short", [b"abc"], content_length=5)

    assert raised.value.errors[0].field == "body"
    assert not PipelineObject.objects.exists()
    assert blob_files() == []


def test_a_key_written_by_someone_else_during_the_upload_is_still_a_conflict(pipeline):
    def body():
        # Another put of the same key commits while this upload is streaming.
        services.put_pipeline_object(pipeline, "race", [b"winner"])
        yield b"loser"

    with pytest.raises(Conflict):
        services.put_pipeline_object(pipeline, "race", body())

    assert services.read_pipeline_object(pipeline, "race", max_bytes=100) == b"winner"
    assert len(blob_files()) == 1


def test_a_put_records_size_and_sha256(pipeline):
    stored = put(pipeline, "k", b"abc")

    assert stored.size == 3
    assert stored.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_download_started_before_an_overwrite_finishes_with_the_old_bytes(
    pipeline, django_capture_on_commit_callbacks
):
    put(pipeline, "k", b"old" * 1000)
    download = services.open_pipeline_object(pipeline, "k")

    with django_capture_on_commit_callbacks(execute=True):
        put(pipeline, "k", b"new", force=True)

    assert b"".join(download.chunks(chunk_size=7)) == b"old" * 1000
    assert services.read_pipeline_object(pipeline, "k", max_bytes=10) == b"new"


@pytest.mark.parametrize(
    "key", ["", "..", "../x", "a/b", "a\\b", ".env", "a..b", "nul\x00", "bell\x07", "del\x7f", " x", "x ", "k" * 257]
)
def test_validate_key_refuses_keys_that_could_mean_a_path_or_never_be_referenced(key):
    with pytest.raises(ValidationFailed) as raised:
        services.validate_key(key)
    assert raised.value.errors[0].field == "key"


@pytest.mark.parametrize("key", ["a", "k" * 256, "v1.2.3", "my file.txt", "résumé", "a-b_c~d@e+f=g"])
def test_validate_key_accepts_ordinary_keys(key):
    assert services.validate_key(key) == key


# --- deleting namespaces and pipelines ------------------------------------------------------------------------------


@pytest.fixture
def stored_everywhere(pipeline, namespaces):
    """team-a/build with a pipeline object and a run object, and team-b/build with one pipeline object."""
    from tests.conftest import deployed_pipeline

    put(pipeline, "kept-in-a", b"a")
    services.put_run_object(start_run(pipeline), "run-a", [b"a"])
    services.put_pipeline_object(deployed_pipeline("team-b"), "kept-in-b", [b"b"])
    assert len(blob_files()) == 3
    return pipeline


def run_objectstore_callbacks(callbacks) -> None:
    """Run the on-commit callbacks the object store registered, and only those: other apps' receivers (containers,
    log files) are not under test here."""
    ours = [c for c in callbacks if c.__module__ == services.__name__]
    assert ours, "the object store registered nothing to run on commit"
    for callback in ours:
        callback()


def test_deleting_a_namespace_removes_its_blobs_and_only_its_blobs(
    stored_everywhere, admin, django_capture_on_commit_callbacks
):
    b_blob = PipelineObject.objects.get(key="kept-in-b").blob

    with django_capture_on_commit_callbacks() as callbacks:
        assert admin.delete("/api/namespaces/team-a").status_code == 204
    run_objectstore_callbacks(callbacks)

    assert [path.name for path in blob_files()] == [b_blob]
    assert list(PipelineObject.objects.values_list("key", flat=True)) == ["kept-in-b"]
    assert not RunObject.objects.exists()


def test_deleting_a_pipeline_removes_its_blobs_and_its_runs_blobs(
    stored_everywhere, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        pipelines.delete_pipeline(stored_everywhere)
    run_objectstore_callbacks(callbacks)

    assert len(blob_files()) == 1
    assert list(PipelineObject.objects.values_list("key", flat=True)) == ["kept-in-b"]
    assert not RunObject.objects.exists()


def test_a_namespace_deletion_that_rolls_back_keeps_the_blobs(stored_everywhere, django_capture_on_commit_callbacks):
    from django.db import transaction

    from pipelines.models import Namespace

    class Abort(Exception):
        pass

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Abort), transaction.atomic():
        pipelines.delete_namespace(Namespace.objects.get(id="team-a"))
        raise Abort

    assert [c for c in callbacks if c.__module__ == services.__name__] == []
    assert len(blob_files()) == 3
    assert services.read_pipeline_object(stored_everywhere, "kept-in-a", max_bytes=10) == b"a"
