"""Bells: wake-ups between the processes of one installation on one host, with no data and no database.

A bell is a Unix datagram socket that a waiting process binds under ``$GOFER_HOME/wakeup/<topic>/`` (one entry per
process, named by its pid). Whoever has news for that topic rings every bell in the directory (``ring``), usually
once a transaction has committed (``ring_on_commit``), and the waiting processes look at the database at once
instead of polling it. Users: the queue's pusher (runs/broker.py, topic = the queue name) and the triggers ticker
(triggers/ticker.py).

A ring can be lost (the ringing process died between its commit and the ring, a bell's buffer was full, the news came
from another machine): every waiter also looks on its own every so often, so a lost ring costs at most that long.
Rings carry no data and bells trust no sender: a stray datagram only makes a waiter look once more. The directory
lives in ``$GOFER_HOME`` (mode 0700), so other local users cannot ring.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import select
import socket
import threading
from pathlib import Path

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux; a longer bell path binds under an abstract name derived from it instead.
_MAX_SOCKET_PATH = 100


def bell_directory(topic: str) -> Path:
    """Where the bells of ``topic`` are: one entry per listening process, named by its process id."""
    return Path(settings.GOFER_HOME) / "wakeup" / topic


def _address(entry: Path) -> str:
    raw = str(entry)
    if len(os.fsencode(raw)) <= _MAX_SOCKET_PATH:
        return raw
    return "\0gofer-bell-" + hashlib.sha256(os.fsencode(raw)).hexdigest()[:40]


_sender: dict[int, socket.socket] = {}
_sender_lock = threading.Lock()


def _sending_socket() -> socket.socket:
    """One unbound, non-blocking datagram socket per process (keyed by pid: workers fork)."""
    pid = os.getpid()
    sock = _sender.get(pid)
    if sock is None:
        with _sender_lock:
            sock = _sender.get(pid)
            if sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                _sender[pid] = sock
    return sock


def ring(topic: str) -> int:
    """Wake every process listening on ``topic``. Never raises: a ring that fails is caught by the waiters' own
    periodic look. Returns how many bells were rung. A bell whose process is gone is removed."""
    try:
        entries = list(bell_directory(topic).iterdir())
    except OSError:
        return 0
    rung = 0
    sock = _sending_socket()
    for entry in entries:
        try:
            sock.sendto(b"!", _address(entry))
            rung += 1
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody listens there any more (the process exited or was killed): forget it.
            with contextlib.suppress(OSError):
                entry.unlink()
        except BlockingIOError:
            rung += 1  # its buffer is full of rings it has not read yet: it is going to look anyway
        except OSError as exc:
            logger.debug("could not ring %s: %s", entry, exc)
    return rung


def ring_on_commit(topic: str, using: str | None = None) -> None:
    """Ring ``topic`` once the current transaction on ``using`` commits (at once outside a transaction): a waiter
    woken earlier would look before it can see the news."""
    transaction.on_commit(lambda: ring(topic), using=using)


class Bell:
    """The listening end: a bound datagram socket, registered in the topic's bell directory."""

    def __init__(self, topic: str) -> None:
        directory = bell_directory(topic)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.entry = directory / str(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            self.entry.unlink()  # a previous process with our pid
        address = _address(self.entry)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        if address.startswith("\0"):
            self.entry.touch(mode=0o600)  # the registration; the socket itself has no file
        self.sock.setblocking(False)

    def drain(self) -> int:
        """Read every ring received so far (they all mean the same thing). Returns how many."""
        count = 0
        while True:
            try:
                self.sock.recv(64)
                count += 1
            except BlockingIOError:
                return count
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise

    def wait(self, timeout: float) -> bool:
        """Block until a ring arrives or ``timeout`` seconds pass. True if it rang."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            self.entry.unlink()
