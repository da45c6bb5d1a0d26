"""Helpers of the sandbox tests: signing a visitor up through the API."""

from __future__ import annotations

from rest_framework.test import APIClient

from tests.conftest import ApiCaller

SIGN_UP = "/api/sandbox"


def sign_up(client: APIClient | None = None, address: str = "198.51.100.7") -> tuple[ApiCaller, dict]:
    """A visitor: POST /api/sandbox (anonymous) from ``address``; their caller and the response body."""
    client = client or APIClient()
    response = client.post(SIGN_UP, REMOTE_ADDR=address, HTTP_GOFER_API_VERSION="v0")
    assert response.status_code == 201, response.content
    body = response.json()
    return ApiCaller(client, body["secret"], body["token_details"]["id"], body["namespace"]["id"]), body
