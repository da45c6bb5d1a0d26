"""What Gofer writes to disk is its owner's only: $GOFER_HOME and every directory under it 0700, the SQLite database
(with its -wal and -shm), the generated keys, task log files and object blobs 0600, whatever the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from objectstore.backends import FilesystemBackend
from runs import logs
from tests.support.processes import REPO

# Opens the database (WAL) and keeps it open while it reports the modes of everything in $GOFER_HOME.
PROBE = """
import json, os, stat, django
django.setup()
from django.conf import settings
from django.db import connection
from kernel import encryption
encryption.keys()
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS probe (a)")
    cursor.execute("INSERT INTO probe VALUES (1)")
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in settings.GOFER_HOME.iterdir()}
    modes["."] = oct(stat.S_IMODE(settings.GOFER_HOME.stat().st_mode))
print(json.dumps(modes))
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def probe(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DJANGO_SETTINGS_MODULE": "gofer_site.settings", "GOFER_HOME": str(home)})
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_gofer_home_its_database_and_its_keys_are_private(tmp_path):
    modes = probe(tmp_path / "new" / "home")
    assert modes["."] == "0o700"
    for name in ("gofer.sqlite3", "gofer.sqlite3-wal", "gofer.sqlite3-shm", "secret_key", "encryption_key"):
        assert modes.get(name) == "0o600", (name, modes)


def test_files_an_older_gofer_left_readable_are_made_private_at_start(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for name in ("gofer.sqlite3", "secret_key"):
        (home / name).write_bytes(b"" if name == "gofer.sqlite3" else b"an-old-secret-key-0123456789abcdef")
        (home / name).chmod(0o644)
    modes = probe(home)
    assert modes["gofer.sqlite3"] == "0o600"
    assert modes["secret_key"] == "0o600"


def test_task_log_files_and_their_directories_are_private(settings, tmp_path, umask_022):
    settings.GOFER_LOG_DIR = tmp_path / "logs"
    path = settings.GOFER_LOG_DIR / "team-a" / "build" / "1" / "compile.7.log"
    with logs.LogWriter(path):
        pass
    assert mode(path) == 0o600
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent, settings.GOFER_LOG_DIR):
        assert mode(directory) == 0o700, directory


def test_object_blobs_and_their_directories_are_private(tmp_path, umask_022):
    backend = FilesystemBackend(tmp_path / "objects")
    with backend.open_writer() as writer:
        writer.write(b"bytes of an object")
        writer.commit()
    blob = backend.path_of(writer.name)
    assert mode(blob) == 0o600
    for directory in (blob.parent, blob.parent.parent, tmp_path / "objects"):
        assert mode(directory) == 0o700, directory
