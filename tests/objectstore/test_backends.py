"""The filesystem backend: atomic writes under generated names, and nothing reachable from outside input."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from objectstore.backends import TEMP_PREFIX, BlobNotFound, FilesystemBackend, get_backend


@pytest.fixture
def backend(tmp_path) -> FilesystemBackend:
    return FilesystemBackend(tmp_path / "objects")


def files_under(backend: FilesystemBackend) -> list:
    return sorted(p for p in backend.root.rglob("*") if p.is_file())


def test_a_committed_blob_is_readable_under_its_generated_name(backend):
    with backend.open_writer() as writer:
        writer.write(b"hello ")
        writer.write(b"world")
        writer.commit()

    reader = backend.open_reader(writer.name)
    assert reader.size == 11
    assert b"".join(reader.chunks(chunk_size=4)) == b"hello world"
    assert files_under(backend) == [backend.root / "blobs" / writer.name[:2] / writer.name]


def test_while_a_blob_is_being_written_only_a_partial_file_exists(backend):
    with backend.open_writer() as writer:
        writer.write(b"half")

        assert not backend.exists(writer.name)
        with pytest.raises(BlobNotFound):
            backend.open_reader(writer.name)
        assert [p.name.startswith(TEMP_PREFIX) for p in files_under(backend)] == [True]
        writer.commit()

    assert backend.exists(writer.name)
    assert [p.name for p in files_under(backend)] == [writer.name]


def test_leaving_a_writer_without_commit_leaves_nothing(backend):
    with pytest.raises(RuntimeError), backend.open_writer() as writer:
        writer.write(b"doomed")
        raise RuntimeError("upload failed")

    assert files_under(backend) == []
    assert not backend.exists(writer.name)


def test_names_are_unique(backend):
    writers = [backend.open_writer() for _ in range(50)]
    for writer in writers:
        writer.abort()

    assert len({writer.name for writer in writers}) == 50
    assert files_under(backend) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "", "abc", "0" * 31 + "/", "A" * 32])
def test_names_the_backend_did_not_generate_reach_no_file(backend, tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("keep me")

    with pytest.raises(BlobNotFound):
        backend.open_reader(name)
    backend.delete(name)
    assert backend.exists(name) is False
    assert victim.read_text() == "keep me"


def test_deleting_a_missing_blob_is_not_an_error(backend):
    backend.delete("0" * 32)

    assert files_under(backend) == []


def test_a_reader_opened_before_a_delete_still_reads_every_byte(backend):
    with backend.open_writer() as writer:
        writer.write(b"x" * 10_000)
        writer.commit()
    reader = backend.open_reader(writer.name)

    backend.delete(writer.name)

    assert not backend.exists(writer.name)
    assert len(b"".join(reader.chunks())) == 10_000


def test_the_configured_backend_stores_under_gofer_object_dir(settings, tmp_path):
    settings.GOFER_OBJECT_DIR = tmp_path / "configured"

    with get_backend().open_writer() as writer:
        writer.commit()

    assert (tmp_path / "configured" / "blobs" / writer.name[:2] / writer.name).is_file()


def test_an_unknown_backend_is_a_configuration_error(settings):
    settings.GOFER_OBJECT_BACKEND = "s3"

    with pytest.raises(ImproperlyConfigured, match="GOFER_OBJECT_BACKEND"):
        get_backend()
