"""pytest fixtures for container images built locally (the building itself is in tests/support/image_builder.py,
which has no pytest dependency so that bench/ can use it too).

Fixtures (expose them with ``pytest_plugins = ["tests.support.images"]``):
- ``docker_client``: a ``docker.DockerClient`` for the session; skips (fails under CI=true) without an engine;
- ``busybox_image``: the tag of the busybox image, built at most once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Re-exported: test modules import these from here.
from tests.support.image_builder import (  # noqa: F401
    APPLETS,
    BUSYBOX_BINARY,
    BUSYBOX_TAG,
    FINGERPRINT_LABEL,
    LAYOUT_VERSION,
    build_image,
    busybox_rootfs_tar,
    docker_available,
    ensure_busybox_image,
)


@pytest.fixture(scope="session")
def docker_client() -> Iterator:
    """A Docker client for the session. Skips the test without an engine, except under CI=true, where it fails."""
    from tests.conftest import need

    need(docker_available(), "Docker engine not running")
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:
    """``gofer-test/busybox:latest``, imported once per session unless an up-to-date one exists."""
    return ensure_busybox_image(docker_client)
