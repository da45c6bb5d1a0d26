"""Container images for tests and benchmarks, built locally because no registry is reachable from the test machines.

The base is ``gofer-test/busybox:latest``: a root filesystem holding only the host's static busybox (package
``busybox-static``) as ``/bin/busybox`` plus a symlink per applet in ``APPLETS``, imported with ``docker import``.
Images that need more (an ENTRYPOINT, a file) are built ``FROM`` it with :func:`build_image`.

The image carries a label with a fingerprint of its content (the busybox binary, the applet list, the layout). An
existing image is reused only when its fingerprint matches, so adding an applet here rebuilds it once, and an image
of the same tag built by something else is replaced rather than trusted.

No pytest here: bench/ uses this module too. The fixtures that wrap it are in tests/support/images.py.
"""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import time
from pathlib import Path

BUSYBOX_TAG = "gofer-test/busybox:latest"
BUSYBOX_BINARY = Path("/bin/busybox")
FINGERPRINT_LABEL = "dev.gofer.test-image.fingerprint"
# Bump when the layout below changes in a way the fingerprint of binary and applets does not capture.
LAYOUT_VERSION = "1"
APPLETS = (
    *("awk", "base64", "basename", "cat", "chmod", "cp", "cut", "date", "dd", "echo", "env", "expr", "false", "grep"),
    *("head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mktemp", "mv", "nproc", "printf", "ps", "pwd"),
    *("readlink", "rm", "seq", "sed", "sh", "sleep", "sort", "stat", "tail", "tee", "test", "timeout", "touch"),
    *("tr", "true", "uname", "uniq", "usleep", "wc", "wget", "xargs", "yes"),
)


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers a ping within a few seconds (from DOCKER_HOST, like the scheduler)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(BUSYBOX_BINARY.read_bytes())
    digest.update(" ".join(APPLETS).encode())
    digest.update(LAYOUT_VERSION.encode())
    return digest.hexdigest()[:16]


def busybox_rootfs_tar() -> bytes:
    """A tar of the root filesystem: /bin/busybox, one symlink per applet, and the few files programs expect."""
    buffer = io.BytesIO()
    now = int(time.time())

    def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, now, link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for directory in ("bin", "dev", "etc", "proc", "sys", "root", "var"):
            add(directory, tarfile.DIRTYPE, 0o755)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        add("bin/busybox", tarfile.REGTYPE, 0o755, BUSYBOX_BINARY.read_bytes())
        for applet in APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
        add("etc/passwd", tarfile.REGTYPE, 0o644, passwd)
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnobody:x:65534:\n")
    return buffer.getvalue()


def ensure_busybox_image(client) -> str:
    """The tag of the busybox image, importing it unless an image with the current fingerprint already exists."""
    import docker

    fingerprint = _fingerprint()
    try:
        labels = client.images.get(BUSYBOX_TAG).labels or {}
        if labels.get(FINGERPRINT_LABEL) == fingerprint:
            return BUSYBOX_TAG
    except docker.errors.ImageNotFound:
        pass
    repository, tag = BUSYBOX_TAG.rsplit(":", 1)
    client.api.import_image_from_data(
        busybox_rootfs_tar(),
        repository=repository,
        tag=tag,
        changes=[f"LABEL {FINGERPRINT_LABEL}={fingerprint}", 'CMD ["/bin/sh"]', "ENV PATH=/bin"],
    )
    return BUSYBOX_TAG


def build_image(client, tag: str, dockerfile: str, files: dict[str, bytes] | None = None) -> str:
    """Build ``tag`` from ``dockerfile`` (which should start ``FROM gofer-test/busybox:latest``) and ``files`` as
    the build context, with networking off; returns ``tag``. The base image must exist (``busybox_image``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o755
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=tag, network_mode="none", rm=True, forcerm=True)
    return tag
