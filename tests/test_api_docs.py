"""/api/docs/ loads nothing from another origin: Redoc is this server's own static file (drf-spectacular-sidecar),
served by the real daphne process."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support.processes import Server


def scripts_of(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)


def test_the_docs_page_loads_redoc_from_this_server(client):
    html = client.get("/api/docs/").content.decode()
    sources = scripts_of(html)
    assert sources, html
    assert all(src.startswith("/static/") for src in sources), sources
    assert "cdn" not in html.lower()
    assert "https://" not in " ".join(sources)


@pytest.mark.slow
def test_the_server_serves_the_redoc_bundle_and_the_admins_styles(transactional_db):
    server = Server()
    try:
        html = requests.get(f"{server.url}/api/docs/", timeout=10).text
        for src in scripts_of(html):
            response = requests.get(f"{server.url}{src}", timeout=10)
            assert response.status_code == 200, src
            assert "javascript" in response.headers["Content-Type"]
            assert len(response.content) > 100_000  # the standalone bundle, not a stub
        css = requests.get(f"{server.url}/static/admin/css/base.css", timeout=10)
        assert css.status_code == 200
        assert requests.get(f"{server.url}/static/../gofer_site/settings.py", timeout=10).status_code == 404
    finally:
        server.stop()
