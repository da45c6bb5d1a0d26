"""The ``gofer-api-version`` header: absent or v0 is served, anything else is refused before a view runs."""

from __future__ import annotations

import pytest


def test_request_without_version_header_is_served(admin):
    response = admin.client.get("/api/namespaces", HTTP_AUTHORIZATION=f"Bearer {admin.token}")
    assert response.status_code == 200
    assert "namespaces" in response.json()


def test_request_with_v0_is_served(admin):
    response = admin.get("/api/namespaces", headers={"gofer-api-version": "v0"})
    assert response.status_code == 200


@pytest.mark.parametrize("version", ["v1", "V0", "0", ""])
def test_other_versions_get_400_naming_the_header(admin, version):
    response = admin.get("/api/namespaces", headers={"gofer-api-version": version})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "unsupported_api_version"
    assert "gofer-api-version" in body["message"]
    assert body["errors"] == [{"field": "gofer-api-version", "message": "must be v0"}]


def test_unsupported_version_is_refused_before_any_change_is_made(admin):
    response = admin.post("/api/namespaces", {"id": "my-ns", "name": "x"}, headers={"gofer-api-version": "v1"})
    assert response.status_code == 400
    assert admin.get("/api/namespaces/my-ns").status_code == 404


def test_unsupported_version_is_refused_even_on_public_routes(anonymous):
    response = anonymous.get("/api/system/metadata", headers={"gofer-api-version": "v2"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "gofer-api-version"


def test_version_header_is_ignored_outside_the_api(client, db):
    response = client.get("/admin/login/", HTTP_GOFER_API_VERSION="v1")
    assert response.status_code == 200
