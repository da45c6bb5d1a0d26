"""Every response carries ``X-Request-Id``; error bodies carry the same id."""

from __future__ import annotations

import re

import pytest

from pipelines.api import views as pipeline_views


def test_every_response_gets_a_generated_request_id(admin):
    first = admin.get("/api/namespaces")
    second = admin.get("/api/namespaces")
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-Id"])
    assert first["X-Request-Id"] != second["X-Request-Id"]


def test_a_sane_incoming_request_id_is_kept(admin):
    response = admin.get("/api/namespaces", headers={"X-Request-Id": "proxy-id-1234.abc_DEF"})
    assert response["X-Request-Id"] == "proxy-id-1234.abc_DEF"


@pytest.mark.parametrize(
    "incoming",
    ["short", "has spaces in it", "x" * 65, "bad/char/acters", "<script>alert</script>", "trace-0123456789\n"],
)
def test_an_unsafe_incoming_request_id_is_replaced(admin, incoming):
    response = admin.get("/api/namespaces", headers={"X-Request-Id": incoming})
    assert response["X-Request-Id"] != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-Id"])


def test_error_body_carries_the_request_id_of_the_header(admin):
    response = admin.get("/api/namespaces/nope")
    assert response.status_code == 404
    assert response.json()["request_id"] == response["X-Request-Id"]


def test_error_body_carries_the_incoming_request_id(admin):
    response = admin.get("/api/namespaces/nope", headers={"X-Request-Id": "trace-0123456789"})
    assert response.json()["request_id"] == "trace-0123456789"


def test_middleware_errors_carry_the_request_id(admin):
    response = admin.get("/api/namespaces", headers={"gofer-api-version": "v9", "X-Request-Id": "trace-0123456789"})
    assert response.status_code == 400
    assert response["X-Request-Id"] == "trace-0123456789"
    assert response.json()["request_id"] == "trace-0123456789"


def test_unknown_route_404_carries_the_request_id(admin):
    response = admin.get("/api/no-such-thing")
    assert response.json()["request_id"] == response["X-Request-Id"]


def test_unexpected_error_is_a_json_500_with_the_request_id(admin, monkeypatch, caplog):
    def explode(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline_views.NamespaceListView, "get", explode)
    admin.client.raise_request_exception = False
    response = admin.get("/api/namespaces", headers={"X-Request-Id": "trace-0123456789"})
    assert response.status_code == 500
    assert response["X-Request-Id"] == "trace-0123456789"
    body = response.json()
    assert body["error_code"] == "internal"
    assert body["request_id"] == "trace-0123456789"
    assert "boom" not in body["message"]
    logged = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
    assert [r.getMessage() for r in logged] == ["Internal Server Error: /api/namespaces [request trace-0123456789]"]
    assert logged[0].exc_info[1].args == ("boom",)


def test_client_errors_are_logged_with_the_request_id(admin, caplog):
    admin.get("/api/namespaces/nope", headers={"X-Request-Id": "trace-0123456789"})
    logged = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert logged == ["Not Found: /api/namespaces/nope [request trace-0123456789]"]
