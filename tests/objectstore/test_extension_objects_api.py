"""Extension objects through the API (Gofer checklist 60, on our side): CRUD, force, and the targeted permission."""

from __future__ import annotations

import pytest

from access import services as access
from objectstore import services
from objectstore.models import ExtensionObject
from tests.conftest import make_caller
from tests.support.objects import blob_files, content_of, raw_post
from triggers.models import Extension

STORE = "/api/extensions/ext-a/objects"
OTHER = "/api/extensions/ext-b/objects"


@pytest.fixture(autouse=True)
def installed(db):
    """Stores exist for installed extensions only (the triggers app's registry): ext-a and ext-b are installed."""
    for extension_id in ("ext-a", "ext-b"):
        Extension.objects.create(id=extension_id, image=f"example.com/{extension_id}:1")


def test_an_extension_that_is_not_installed_has_no_store(admin):
    response = admin.get("/api/extensions/not-installed/objects")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "extension_id"


@pytest.fixture
def extension_a(db):
    """A token whose role grants objects on extension ext-a only, as an extension's own token would."""
    access.create_role(
        "ext-a-store",
        "ext-a's own object store",
        [{"resources": ["extensions:^ext-a$", "objects"], "actions": ["read", "write", "delete"]}],
    )
    return make_caller("extension:ext-a", ["ext-a-store"])


def test_an_admin_stores_lists_reads_overwrites_and_deletes_extension_objects(
    admin, django_capture_on_commit_callbacks
):
    created = raw_post(admin, f"{STORE}/cursor", b"41")
    assert created.status_code == 201
    assert created.json()["object"]["key"] == "cursor"
    assert set(created.json()["object"]) == {"key", "created"}
    assert admin.get(STORE).json()["objects"][0]["key"] == "cursor"
    assert content_of(admin.get(f"{STORE}/cursor")) == b"41"

    assert raw_post(admin, f"{STORE}/cursor", b"42").status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        assert raw_post(admin, f"{STORE}/cursor", b"42", force="true").status_code == 201
        assert content_of(admin.get(f"{STORE}/cursor")) == b"42"
        assert admin.delete(f"{STORE}/cursor").status_code == 204

    assert admin.get(f"{STORE}/cursor").status_code == 404
    assert admin.get(STORE).json() == {"objects": []}
    assert blob_files() == []


def test_an_extension_uses_its_own_store(extension_a):
    assert raw_post(extension_a, f"{STORE}/state", b"ok").status_code == 201
    assert content_of(extension_a.get(f"{STORE}/state")) == b"ok"
    assert [o["key"] for o in extension_a.get(STORE).json()["objects"]] == ["state"]
    assert extension_a.delete(f"{STORE}/state").status_code == 204


def test_an_extension_cannot_touch_another_extensions_store(extension_a, admin):
    raw_post(admin, f"{OTHER}/state", b"b's")

    responses = [
        extension_a.get(OTHER),
        extension_a.get(f"{OTHER}/state"),
        raw_post(extension_a, f"{OTHER}/state", b"mine now", force="true"),
        extension_a.delete(f"{OTHER}/state"),
    ]

    assert [r.status_code for r in responses] == [403] * 4
    assert all("extensions:ext-b" in r.json()["message"] for r in responses)
    assert content_of(admin.get(f"{OTHER}/state")) == b"b's"


def test_stores_of_two_extensions_are_separate(admin):
    raw_post(admin, f"{STORE}/k", b"a")
    raw_post(admin, f"{OTHER}/k", b"b")

    assert content_of(admin.get(f"{STORE}/k")) == b"a"
    assert content_of(admin.get(f"{OTHER}/k")) == b"b"


def test_a_token_without_extension_permissions_is_refused(alice):
    assert alice.get(STORE).status_code == 403
    assert raw_post(alice, f"{STORE}/k", b"x").status_code == 403
    assert not ExtensionObject.objects.exists()


def test_anonymous_callers_get_401_on_extension_objects(anonymous):
    assert [anonymous.get(STORE).status_code, raw_post(anonymous, f"{STORE}/k", b"x").status_code] == [401, 401]


@pytest.mark.parametrize("extension_id", ["ab", "a_b", "x" * 33])
def test_an_invalid_extension_id_is_a_400_naming_it(admin, extension_id):
    response = raw_post(admin, f"/api/extensions/{extension_id}/objects/k", b"x")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "extension_id"
    assert blob_files() == []


def test_deleting_an_extensions_store_removes_every_object_and_blob(admin, django_capture_on_commit_callbacks):
    for key in ("a", "b"):
        raw_post(admin, f"{STORE}/{key}", b"x")
    raw_post(admin, f"{OTHER}/kept", b"x")

    with django_capture_on_commit_callbacks(execute=True):
        assert services.delete_extension_objects("ext-a") == 2

    assert list(ExtensionObject.objects.values_list("extension_id", "key")) == [("ext-b", "kept")]
    assert len(blob_files()) == 1
