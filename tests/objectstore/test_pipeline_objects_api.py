"""Pipeline objects through the API: CRUD and force (Gofer checklist 43), shapes, keys, limits (46) and access."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from objectstore.models import PipelineObject
from tests.support.objects import PIPELINE, blob_files, content_of, head, raw_post

OBJECTS = f"{PIPELINE}/objects"


def test_it_stores_the_raw_body_and_returns_the_same_bytes(pipeline, alice):
    payload = bytes(range(256)) * 10

    response = raw_post(alice, f"{OBJECTS}/artifact.tar", payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"object"}
    assert set(body["object"]) == {"key", "created"}
    assert body["object"]["key"] == "artifact.tar"
    assert abs(body["object"]["created"] - time.time() * 1000) < 60_000
    download = alice.get(f"{OBJECTS}/artifact.tar")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Length"] == str(len(payload))
    assert content_of(download) == payload


def test_the_list_gives_each_key_with_its_created_time_in_gofer_shape(pipeline, alice):
    for key in ("one", "two"):
        assert raw_post(alice, f"{OBJECTS}/{key}", key.encode()).status_code == 201

    response = alice.get(OBJECTS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"objects"}
    assert [o["key"] for o in body["objects"]] == ["one", "two"]
    assert all(
        set(o) == {"key", "created"} and isinstance(o["created"], int) and o["created"] > 0 for o in body["objects"]
    )


def test_the_list_is_paginated(pipeline, alice):
    for index in range(5):
        raw_post(alice, f"{OBJECTS}/k{index}", b"x")

    first = alice.get(OBJECTS, limit="2").json()["objects"]
    rest = alice.get(OBJECTS, limit="2", offset="2").json()["objects"]
    newest_first = alice.get(OBJECTS, reverse="true").json()["objects"]

    assert [o["key"] for o in first] == ["k0", "k1"]
    assert [o["key"] for o in rest] == ["k2", "k3"]
    assert [o["key"] for o in newest_first] == ["k4", "k3", "k2", "k1", "k0"]


def test_a_second_put_without_force_is_a_409_and_keeps_the_first_bytes(pipeline, alice):
    raw_post(alice, f"{OBJECTS}/report", b"first")
    files_before = blob_files()

    response = raw_post(alice, f"{OBJECTS}/report", b"second")

    assert response.status_code == 409
    assert response.json()["error_code"] == "conflict"
    assert "force=true" in response.json()["message"]
    assert response.json()["errors"][0]["field"] == "key"
    assert content_of(alice.get(f"{OBJECTS}/report")) == b"first"
    assert blob_files() == files_before


def test_a_put_with_force_replaces_the_bytes_and_the_old_blob_goes(pipeline, alice, django_capture_on_commit_callbacks):
    raw_post(alice, f"{OBJECTS}/report", b"first")
    old_files = blob_files()

    with django_capture_on_commit_callbacks(execute=True):
        response = raw_post(alice, f"{OBJECTS}/report", b"second", force="true")

    assert response.status_code == 201
    assert content_of(alice.get(f"{OBJECTS}/report")) == b"second"
    assert len(blob_files()) == 1
    assert not old_files[0].exists()


def test_force_false_is_the_same_as_no_force(pipeline, alice):
    raw_post(alice, f"{OBJECTS}/report", b"first")

    assert raw_post(alice, f"{OBJECTS}/report", b"second", force="false").status_code == 409


def test_force_must_be_a_boolean(pipeline, alice):
    response = raw_post(alice, f"{OBJECTS}/report", b"x", force="maybe")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "force"
    assert blob_files() == []


def test_delete_removes_the_object_and_its_blob(pipeline, alice, django_capture_on_commit_callbacks):
    raw_post(alice, f"{OBJECTS}/report", b"bytes")

    with django_capture_on_commit_callbacks(execute=True):
        response = alice.delete(f"{OBJECTS}/report")

    assert response.status_code == 204
    assert alice.get(f"{OBJECTS}/report").status_code == 404
    assert alice.get(OBJECTS).json() == {"objects": []}
    assert blob_files() == []


def test_a_missing_object_is_a_404_naming_the_key(pipeline, alice):
    for response in (alice.get(f"{OBJECTS}/nothing-here"), alice.delete(f"{OBJECTS}/nothing-here")):
        assert response.status_code == 404
        assert "nothing-here" in response.json()["message"]
        assert response.json()["errors"][0]["field"] == "key"


def test_head_gives_the_size_without_the_bytes(pipeline, alice):
    raw_post(alice, f"{OBJECTS}/report", b"12345")

    response = head(alice, f"{OBJECTS}/report")

    assert response.status_code == 200
    assert response["Content-Length"] == "5"
    assert response.content == b""


def test_an_empty_body_is_an_empty_object(pipeline, alice):
    assert raw_post(alice, f"{OBJECTS}/empty", b"").status_code == 201

    assert content_of(alice.get(f"{OBJECTS}/empty")) == b""


def test_an_upload_bigger_than_the_json_body_limit_is_fine_because_it_is_never_parsed(pipeline, alice, settings):
    """request.body / request.data would refuse this body (DATA_UPLOAD_MAX_MEMORY_SIZE); the stream does not."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = b"z" * 100_000

    assert raw_post(alice, f"{OBJECTS}/big", payload).status_code == 201
    assert content_of(alice.get(f"{OBJECTS}/big")) == payload


# --- keys -----------------------------------------------------------------------------------------------------------

TRAVERSALS = {
    "%2e%2e": "..",
    "..%5C..%5Cescape": "..\\..\\escape",
    "a%5Cb": "a\\b",
    ".hidden": ".hidden",
    "a..b": "a..b",
    "nul%00byte": "nul\x00byte",
    "tab%09inside": "tab\tinside",
    "%20leading-space": " leading-space",
    "k" * 257: "k" * 257,
}


@pytest.fixture
def store_parent(object_dir) -> Path:
    """The directory around GOFER_OBJECT_DIR, where an escaping write would land."""
    object_dir.parent.mkdir(parents=True, exist_ok=True)
    return object_dir.parent


def _everything_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


@pytest.mark.parametrize("encoded", TRAVERSALS, ids=list(TRAVERSALS.values()))
def test_a_key_that_could_reach_the_file_system_is_a_400_naming_key_and_nothing_is_written(
    pipeline, alice, store_parent, encoded
):
    response = raw_post(alice, f"{OBJECTS}/{encoded}", b"payload")

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "key"
    assert _everything_under(store_parent) == []
    assert not PipelineObject.objects.exists()


@pytest.mark.parametrize("encoded", ["..%2F..%2Fescape", "a%2Fb", "%2e%2e%2f%2e%2e%2fescape"])
def test_a_key_with_a_slash_matches_no_route_and_nothing_is_written(pipeline, alice, store_parent, encoded):
    response = raw_post(alice, f"{OBJECTS}/{encoded}", b"payload")

    assert response.status_code == 404, response.content
    assert _everything_under(store_parent) == []
    assert not PipelineObject.objects.exists()


@pytest.mark.parametrize("encoded", ["%2e%2e", "..%5Cx", ".hidden"])
def test_get_and_delete_refuse_bad_keys_too(pipeline, alice, encoded):
    for response in (alice.get(f"{OBJECTS}/{encoded}"), alice.delete(f"{OBJECTS}/{encoded}")):
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "key"


def test_keys_may_hold_dots_dashes_spaces_and_unicode(pipeline, alice):
    for encoded, key in (
        ("v1.2.3-linux_amd64.tar.gz", "v1.2.3-linux_amd64.tar.gz"),
        ("r%C3%A9sum%C3%A9%20v2", "résumé v2"),
    ):
        assert raw_post(alice, f"{OBJECTS}/{encoded}", b"x").status_code == 201
        assert alice.get(f"{OBJECTS}/{encoded}").status_code == 200
        assert PipelineObject.objects.filter(key=key).exists()


# --- limits ---------------------------------------------------------------------------------------------------------


def test_a_body_over_the_size_limit_is_a_413_and_nothing_is_stored(pipeline, alice, settings, store_parent):
    settings.GOFER_OBJECT_MAX_BYTES = 10

    response = raw_post(alice, f"{OBJECTS}/big", b"x" * 11)

    assert response.status_code == 413
    body = response.json()
    assert body["error_code"] == "body_too_large"
    assert body["errors"][0]["field"] == "body"
    assert "10 bytes" in body["message"]
    assert not PipelineObject.objects.exists()
    assert [p for p in _everything_under(store_parent) if p.is_file()] == []


def test_a_body_exactly_at_the_size_limit_is_stored(pipeline, alice, settings):
    settings.GOFER_OBJECT_MAX_BYTES = 10

    assert raw_post(alice, f"{OBJECTS}/exact", b"x" * 10).status_code == 201


def test_a_put_beyond_the_count_limit_evicts_the_oldest_object(
    pipeline, alice, settings, django_capture_on_commit_callbacks
):
    settings.GOFER_PIPELINE_OBJECT_LIMIT = 3
    for key in ("first", "second", "third"):
        raw_post(alice, f"{OBJECTS}/{key}", key.encode())
    oldest_blob = Path(settings.GOFER_OBJECT_DIR) / "blobs"
    first_blob = PipelineObject.objects.get(key="first").blob

    with django_capture_on_commit_callbacks(execute=True):
        response = raw_post(alice, f"{OBJECTS}/fourth", b"fourth")

    assert response.status_code == 201
    assert [o["key"] for o in alice.get(OBJECTS).json()["objects"]] == ["second", "third", "fourth"]
    assert alice.get(f"{OBJECTS}/first").status_code == 404
    assert not (oldest_blob / first_blob[:2] / first_blob).exists()
    assert len(blob_files()) == 3


def test_an_overwrite_makes_an_object_the_newest_so_the_next_least_recently_stored_goes(pipeline, alice, settings):
    settings.GOFER_PIPELINE_OBJECT_LIMIT = 3
    for key in ("a", "b", "c"):
        raw_post(alice, f"{OBJECTS}/{key}", b"1")
    raw_post(alice, f"{OBJECTS}/a", b"2", force="true")

    raw_post(alice, f"{OBJECTS}/d", b"1")

    assert [o["key"] for o in alice.get(OBJECTS).json()["objects"]] == ["c", "a", "d"]


def test_a_lowered_count_limit_is_applied_at_the_next_put(pipeline, alice, settings):
    for key in ("a", "b", "c", "d"):
        raw_post(alice, f"{OBJECTS}/{key}", b"1")
    settings.GOFER_PIPELINE_OBJECT_LIMIT = 2

    raw_post(alice, f"{OBJECTS}/e", b"1")

    assert [o["key"] for o in alice.get(OBJECTS).json()["objects"]] == ["d", "e"]


def test_the_count_limit_is_per_pipeline(namespaces, pipeline, alice, settings):
    from tests.conftest import deployed_pipeline

    deployed_pipeline("team-a", "other")
    settings.GOFER_PIPELINE_OBJECT_LIMIT = 1
    raw_post(alice, f"{OBJECTS}/mine", b"1")

    raw_post(alice, "/api/namespaces/team-a/pipelines/other/objects/theirs", b"1")

    assert [o["key"] for o in alice.get(OBJECTS).json()["objects"]] == ["mine"]


# --- who may ---------------------------------------------------------------------------------------------------------


def test_an_outsider_gets_404_everywhere_and_stores_nothing(pipeline, alice, charlie):
    raw_post(alice, f"{OBJECTS}/report", b"secret")

    responses = [
        charlie.get(OBJECTS),
        charlie.get(f"{OBJECTS}/report"),
        raw_post(charlie, f"{OBJECTS}/planted", b"x"),
        raw_post(charlie, f"{OBJECTS}/report", b"x", force="true"),
        charlie.delete(f"{OBJECTS}/report"),
    ]

    assert [r.status_code for r in responses] == [404] * 5
    assert all(r.json()["error_code"] == "not_found" for r in responses)
    assert list(PipelineObject.objects.values_list("key", flat=True)) == ["report"]
    assert content_of(alice.get(f"{OBJECTS}/report")) == b"secret"


def test_a_read_only_member_reads_but_cannot_put_or_delete(pipeline, alice, bob):
    raw_post(alice, f"{OBJECTS}/report", b"bytes")

    assert bob.get(OBJECTS).status_code == 200
    assert content_of(bob.get(f"{OBJECTS}/report")) == b"bytes"
    put = raw_post(bob, f"{OBJECTS}/new", b"x")
    delete = bob.delete(f"{OBJECTS}/report")
    assert (put.status_code, delete.status_code) == (403, 403)
    assert "objects" in put.json()["message"]
    assert sorted(PipelineObject.objects.values_list("key", flat=True)) == ["report"]


def test_anonymous_callers_get_401(pipeline, anonymous):
    responses = [
        anonymous.get(OBJECTS),
        anonymous.get(f"{OBJECTS}/report"),
        raw_post(anonymous, f"{OBJECTS}/report", b"x"),
        anonymous.delete(f"{OBJECTS}/report"),
    ]

    assert [r.status_code for r in responses] == [401] * 4
    assert not PipelineObject.objects.exists()


def test_a_missing_pipeline_is_a_404_naming_pipeline_id(namespaces, alice):
    response = raw_post(alice, "/api/namespaces/team-a/pipelines/nope/objects/k", b"x")

    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "pipeline_id"
