"""A real private image registry for the tests: Docker's distribution registry (Debian package ``docker-registry``,
binary ``/usr/bin/docker-registry``), started once per session on a free loopback port.

Setup (the simplest that really works, checked against registry 2.8 and Docker 20.10):

- storage: the ``filesystem`` driver in a temporary directory, deleted at the end of the session;
- authentication: ``auth.htpasswd`` with one user whose password is a fresh random string; the file holds a bcrypt
  hash (the only scheme the registry accepts), made with the standard library's ``crypt`` (libxcrypt does bcrypt) at
  cost 4, because the registry checks the hash on every request of a pull;
- no TLS: the registry serves htpasswd authentication over plain HTTP (it does not require TLS), and Docker treats
  ``127.0.0.1:<port>`` registries as insecure-allowed, so it pulls and pushes over HTTP and sends the credentials.
  Nothing leaves the loopback interface.

Expose the fixture with ``from tests.support.registry import registry_fixture``; it is named ``registry``. Without
the binary the tests that use it skip, or fail under CI=true (``need``). ``Registry.push`` builds a tiny image
``FROM`` the busybox test image with a marker file, pushes it with the credentials and returns its registry digest;
the image is then removed from the engine, so a task that uses it must pull it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import need
from tests.support.image_builder import build_image
from tests.support.processes import Process, free_port

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
STARTUP_TIMEOUT = 30
USER = "gofer-robot"
# The manifest format Docker 20.10 pushes; the registry answers with it when asked.
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (``$2b$04$...``) for an htpasswd file, without a new dependency: the ``crypt`` module (Python
    <= 3.12) wraps libxcrypt, which does bcrypt. Cost 4, the lowest bcrypt allows: tests need speed, not strength."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt is deprecated since 3.11 and gone in 3.13
        try:
            import crypt
        except ImportError:  # Python >= 3.13
            crypt = None
    if crypt is not None:
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2**4))
        if hashed and hashed.startswith("$2"):
            return hashed
    raise RuntimeError("no bcrypt available to write the registry's htpasswd file (the crypt module is gone)")


@dataclass(frozen=True)
class PushedImage:
    repository: str  # "127.0.0.1:<port>/gofer-test/private-..."
    tag: str
    digest: str  # the registry digest, "127.0.0.1:<port>/gofer-test/private-...@sha256:..."

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class Registry:
    host: str  # "127.0.0.1:<port>", the prefix of every image reference in it
    user: str
    password: str = field(repr=False)
    process: Process

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth_config(self) -> dict[str, str]:
        """The credentials as docker-py's ``auth_config`` wants them."""
        return {"username": self.user, "password": self.password}

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)

    def push(self, client, base_image: str, name: str, tag: str, marker: str) -> PushedImage:
        """Push an image ``FROM base_image`` whose ``/marker`` holds ``marker`` as ``<host>/<name>:<tag>``.

        It is built and pushed under a throw-away tag, then the registry's manifest is copied to ``tag`` through the
        registry API, as if someone else had pushed it: the engine's local copy of ``<host>/<name>:<tag>`` (an older
        version pulled before) stays as it was. The pushed image is removed from the engine afterwards."""
        repository = f"{self.host}/{name}"
        staging = f"staging-{uuid.uuid4().hex[:12]}"
        build_image(
            client,
            f"{repository}:{staging}",
            f"FROM {base_image}\nCOPY marker /marker\n",
            {"marker": marker.encode() + b"\n"},
        )
        try:
            digest = ""
            errors = []
            for message in client.api.push(
                repository, tag=staging, stream=True, decode=True, auth_config=self.auth_config
            ):
                if message.get("error"):
                    errors.append(message["error"])
                digest = (message.get("aux") or {}).get("Digest", digest)
            if errors or not digest:
                raise RuntimeError(f"pushing {repository}:{staging} failed: {errors}\n{self.log_tail()}")
        finally:
            client.images.remove(f"{repository}:{staging}")
        self._copy_manifest(name, staging, tag, digest)
        return PushedImage(repository=repository, tag=tag, digest=f"{repository}@{digest}")

    def _copy_manifest(self, name: str, from_tag: str, to_tag: str, digest: str) -> None:
        auth = (self.user, self.password)
        got = requests.get(
            f"{self.url}/v2/{name}/manifests/{from_tag}", headers={"Accept": MANIFEST_V2}, auth=auth, timeout=10
        )
        got.raise_for_status()
        put = requests.put(
            f"{self.url}/v2/{name}/manifests/{to_tag}",
            data=got.content,
            headers={"Content-Type": got.headers["Content-Type"]},
            auth=auth,
            timeout=10,
        )
        put.raise_for_status()
        if put.headers.get("Docker-Content-Digest") != digest:
            raise RuntimeError(
                f"the registry stored {to_tag} as {put.headers.get('Docker-Content-Digest')}, not {digest}"
            )

    def remove_local_images(self, client) -> None:
        """Remove every image the engine holds from this registry (pulled by the tests)."""
        for image in client.images.list(all=True):
            references = [*(image.attrs.get("RepoTags") or []), *(image.attrs.get("RepoDigests") or [])]
            if any(reference.startswith(f"{self.host}/") for reference in references):
                with contextlib.suppress(Exception):  # best effort: gone already, or still used by a container
                    client.images.remove(image.id, force=True)


def _wait_until_ready(registry: Registry) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if registry.process.exit_code() is not None:
            raise RuntimeError(f"docker-registry exited with {registry.process.exit_code()}:\n{registry.log_tail()}")
        try:
            # 401 without credentials and 200 with them: it is up and authentication is on.
            if (
                requests.get(f"{registry.url}/v2/", timeout=1).status_code == 401
                and requests.get(f"{registry.url}/v2/", auth=(registry.user, registry.password), timeout=1).ok
            ):
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not become ready within {STARTUP_TIMEOUT}s:\n{registry.log_tail()}")


def _config(port: int, storage: Path, htpasswd: Path) -> str:
    # https://distribution.github.io/distribution/about/configuration/ (the registry 2.x configuration file).
    return f"""\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: gofer-test-registry
    path: {htpasswd}
"""


@pytest.fixture(scope="session", name="registry")
def registry_fixture() -> Iterator[Registry]:
    """A private registry on ``127.0.0.1:<free port>`` with htpasswd authentication, for the whole session."""
    need(
        REGISTRY_BINARY.exists() and os.access(REGISTRY_BINARY, os.X_OK),
        f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)",
    )
    workdir = Path(tempfile.mkdtemp(prefix="gofer-test-registry-"))
    try:
        password = secrets.token_urlsafe(18)
        (workdir / "storage").mkdir()
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(f"{USER}:{bcrypt_hash(password)}\n")
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(_config(port, workdir / "storage", htpasswd))
        process = Process([str(REGISTRY_BINARY), "serve", str(config)], None, workdir / "registry.log", cwd=workdir)
        registry = Registry(f"127.0.0.1:{port}", USER, password, process)
        try:
            _wait_until_ready(registry)
            yield registry
        finally:
            _remove_pulled_images(registry)
            process.stop(timeout=10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_pulled_images(registry: Registry) -> None:
    from tests.support.image_builder import docker_available

    if not docker_available():
        return
    import docker

    client = docker.from_env(timeout=60)
    try:
        registry.remove_local_images(client)
    finally:
        client.close()
