"""Files and directories Gofer creates are its owner's only (docs/security.md, "The server"): directories 0700,
files 0600, whatever the process's umask. Existing ones keep their mode: an operator's directory is theirs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directories(path: Path) -> None:
    """Create ``path`` and each missing parent with mode 0700 (``mkdir(parents=True)`` would give the parents the
    umask's default, often 0755)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIRECTORY_MODE)
            # mkdir's mode passes through the umask, which can only take bits away; 0700 stays 0700 or less.
            directory.chmod(DIRECTORY_MODE)


def open_private_append(path: Path) -> int:
    """A file descriptor of ``path`` opened for appending, created with mode 0600 if missing."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
