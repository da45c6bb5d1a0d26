"""Run objects through the API: CRUD and force (Gofer checklist 44), scoping to one run, expiry (45) and access."""

from __future__ import annotations

import pytest

from objectstore import services
from objectstore.models import RunObject
from tests.support.objects import PIPELINE, blob_files, content_of, head, raw_post, start_run

RUN1 = f"{PIPELINE}/runs/1/objects"
RUN2 = f"{PIPELINE}/runs/2/objects"


def test_it_stores_lists_returns_overwrites_and_deletes_run_objects(run, alice, django_capture_on_commit_callbacks):
    created = raw_post(alice, f"{RUN1}/build.log", b"compiled")
    assert created.status_code == 201
    assert set(created.json()["object"]) == {"key", "created"}
    assert created.json()["object"]["key"] == "build.log"

    listed = alice.get(RUN1).json()
    assert [o["key"] for o in listed["objects"]] == ["build.log"]
    assert set(listed) == {"objects"}
    assert content_of(alice.get(f"{RUN1}/build.log")) == b"compiled"

    assert raw_post(alice, f"{RUN1}/build.log", b"again").status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        assert raw_post(alice, f"{RUN1}/build.log", b"again", force="true").status_code == 201
    assert content_of(alice.get(f"{RUN1}/build.log")) == b"again"
    assert len(blob_files()) == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert alice.delete(f"{RUN1}/build.log").status_code == 204
    assert alice.get(f"{RUN1}/build.log").status_code == 404
    assert alice.get(RUN1).json() == {"objects": []}
    assert blob_files() == []


def test_run_objects_belong_to_their_run(pipeline, alice):
    start_run(pipeline)
    start_run(pipeline)
    raw_post(alice, f"{RUN1}/shared-name", b"run one")
    raw_post(alice, f"{RUN2}/shared-name", b"run two")

    assert content_of(alice.get(f"{RUN1}/shared-name")) == b"run one"
    assert content_of(alice.get(f"{RUN2}/shared-name")) == b"run two"
    assert alice.get(f"{PIPELINE}/objects/shared-name").status_code == 404


def test_a_missing_run_is_a_404_naming_run_id(pipeline, alice):
    responses = [
        alice.get(RUN1),
        alice.get(f"{RUN1}/k"),
        raw_post(alice, f"{RUN1}/k", b"x"),
        alice.delete(f"{RUN1}/k"),
    ]

    assert [r.status_code for r in responses] == [404] * 4
    assert all(r.json()["errors"][0]["field"] == "run_id" for r in responses)
    assert not RunObject.objects.exists()


def test_a_run_id_that_is_not_a_number_is_a_400(pipeline, alice):
    response = alice.get(f"{PIPELINE}/runs/latest/objects")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "run_id"


def test_head_gives_the_size_of_a_run_object(run, alice):
    raw_post(alice, f"{RUN1}/k", b"abc")

    assert head(alice, f"{RUN1}/k")["Content-Length"] == "3"


def test_a_bad_key_is_a_400_for_run_objects_too(run, alice):
    response = raw_post(alice, f"{RUN1}/%2e%2e", b"x")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "key"
    assert blob_files() == []


def test_a_body_over_the_size_limit_is_a_413_for_run_objects_too(run, alice, settings):
    settings.GOFER_OBJECT_MAX_BYTES = 3

    response = raw_post(alice, f"{RUN1}/k", b"four")

    assert response.status_code == 413
    assert not RunObject.objects.exists()
    assert blob_files() == []


def test_run_objects_have_no_count_limit(run, alice, settings):
    settings.GOFER_PIPELINE_OBJECT_LIMIT = 1
    for key in ("a", "b", "c"):
        raw_post(alice, f"{RUN1}/{key}", b"x")

    assert len(alice.get(RUN1).json()["objects"]) == 3


@pytest.fixture
def expired_run(pipeline, alice, settings):
    """Run 1 with an object, expired after runs 2 and 3 (GOFER_RUN_OBJECT_EXPIRY = 2)."""
    settings.GOFER_RUN_OBJECT_EXPIRY = 2
    first = start_run(pipeline)
    raw_post(alice, f"{RUN1}/report", b"old")
    start_run(pipeline)
    start_run(pipeline)
    assert [r.number for r in services.expire_run_objects(pipeline)] == [1]
    return first


def test_after_expiry_the_runs_objects_answer_410_saying_they_expired(expired_run, alice):
    responses = [
        alice.get(RUN1),
        alice.get(f"{RUN1}/report"),
        raw_post(alice, f"{RUN1}/report", b"new", force="true"),
        raw_post(alice, f"{RUN1}/fresh", b"new"),
        alice.delete(f"{RUN1}/report"),
    ]

    assert [r.status_code for r in responses] == [410] * 5
    for response in responses:
        assert response.json()["error_code"] == "objects_expired"
        assert "run 1's objects have expired" in response.json()["message"]
        assert "GOFER_RUN_OBJECT_EXPIRY" in response.json()["message"]
    assert not RunObject.objects.exists()


def test_the_runs_after_an_expired_one_keep_their_objects(expired_run, alice):
    raw_post(alice, f"{PIPELINE}/runs/3/objects/k", b"new")

    assert alice.get(f"{PIPELINE}/runs/3/objects").json()["objects"][0]["key"] == "k"


def test_an_outsider_gets_404_on_run_objects(run, alice, charlie):
    raw_post(alice, f"{RUN1}/k", b"x")

    responses = [
        charlie.get(RUN1),
        charlie.get(f"{RUN1}/k"),
        raw_post(charlie, f"{RUN1}/j", b"x"),
        charlie.delete(f"{RUN1}/k"),
    ]

    assert [r.status_code for r in responses] == [404] * 4
    assert list(RunObject.objects.values_list("key", flat=True)) == ["k"]


def test_a_read_only_member_cannot_put_or_delete_run_objects(run, alice, bob):
    raw_post(alice, f"{RUN1}/k", b"x")

    assert content_of(bob.get(f"{RUN1}/k")) == b"x"
    assert raw_post(bob, f"{RUN1}/j", b"x").status_code == 403
    assert bob.delete(f"{RUN1}/k").status_code == 403
    assert list(RunObject.objects.values_list("key", flat=True)) == ["k"]


def test_anonymous_callers_get_401_on_run_objects(run, anonymous):
    responses = [anonymous.get(RUN1), raw_post(anonymous, f"{RUN1}/k", b"x"), anonymous.delete(f"{RUN1}/k")]

    assert [r.status_code for r in responses] == [401] * 3
