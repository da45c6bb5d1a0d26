"""Waking log followers when their log file changes, instead of having them look every 0.1 s.

On Linux one inotify instance per process, read by one thread, watches the directories of the log files that
followers (the logs websocket, ``GET .../logs?follow=true``) wait on, and wakes the followers of a file when the
worker writes to it, creates it or deletes it. A follower whose file does not exist yet (the task has not started)
watches the nearest existing directory on the file's path and moves down as the directories appear.

A wake-up only says "look now": the followers keep their poll as the fallback, so a wake-up that never comes costs
at most one poll period, never a line. That covers writers on another machine (``GOFER_LOG_DIR`` on shared storage,
where inotify sees nothing), an inotify limit reached (``fs.inotify.max_user_watches``), a kernel event queue
overflow, and systems without inotify, where ``Subscription.wait`` simply sleeps its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

# inotify(7)
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_CLOEXEC = os.O_CLOEXEC
# What a directory watch reports: a file in it written, created, moved in or out, deleted; the directory itself gone.
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_GONE = _IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of NUL-padded name)


class _Inotify:
    """One inotify instance and the thread that reads it. Watches are per directory, shared by every subscription
    to a name in it, and removed when the last one goes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = libc.inotify_init1(_IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd
        self._lock = threading.Lock()
        self._wd_of: dict[str, int] = {}  # directory -> watch descriptor
        self._subscribers: dict[int, dict[str, set[Subscription]]] = {}  # wd -> name in it -> subscriptions
        self._thread = threading.Thread(target=self._run, name="gofer-log-wakeups", daemon=True)
        self._thread.start()

    def watch(self, directory: str, name: str, subscription: Subscription) -> bool:
        """Wake ``subscription`` when ``name`` in ``directory`` changes. False if the directory cannot be watched."""
        with self._lock:
            wd = self._wd_of.get(directory)
            if wd is None:
                wd = self._add(self.fd, os.fsencode(directory), _MASK | _IN_ONLYDIR)
                if wd < 0:
                    return False
                self._wd_of[directory] = wd
            self._subscribers.setdefault(wd, {}).setdefault(name, set()).add(subscription)
            return True

    def unwatch(self, directory: str, name: str, subscription: Subscription) -> None:
        with self._lock:
            wd = self._wd_of.get(directory)
            if wd is None:
                return
            names = self._subscribers.get(wd, {})
            subscribers = names.get(name)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del names[name]
            if not names:
                self._subscribers.pop(wd, None)
                del self._wd_of[directory]
                self._rm(self.fd, wd)

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except InterruptedError:
                continue
            except OSError:
                logger.exception("reading inotify events failed; log followers fall back to polling")
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        to_wake: set[Subscription] = set()
        offset = 0
        with self._lock:
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = (
                    data[offset + _EVENT.size : offset + _EVENT.size + length]
                    .rstrip(b"\0")
                    .decode("utf-8", "surrogateescape")
                )
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    for names in self._subscribers.values():
                        for subscribers in names.values():
                            to_wake |= subscribers
                    continue
                names = self._subscribers.get(wd)
                if names is None:
                    continue
                if mask & _GONE:
                    # The directory went away: everyone waiting in it looks again (and watches what is left).
                    for subscribers in names.values():
                        to_wake |= subscribers
                    if mask & _IN_IGNORED:  # the kernel dropped the watch: its subscriptions watch again
                        for subscribers in names.values():
                            for subscription in subscribers:
                                subscription._target = None
                        self._subscribers.pop(wd, None)
                        for directory, known in list(self._wd_of.items()):
                            if known == wd:
                                del self._wd_of[directory]
                    continue
                to_wake |= names.get(name, set())
        for subscription in to_wake:
            subscription.wake()


_instance: _Inotify | None = None
_instance_pid = 0
_instance_lock = threading.Lock()


def _inotify() -> _Inotify | None:
    """This process's inotify reader (made on first use, again after a fork), or None where there is none."""
    global _instance, _instance_pid
    with _instance_lock:
        if _instance_pid != os.getpid():
            _instance_pid = os.getpid()
            try:
                _instance = _Inotify()
            except (OSError, AttributeError) as exc:
                logger.info("no inotify (%s): log followers poll", exc)
                _instance = None
        return _instance


class Subscription:
    """Wake-ups for one follower of the log file at ``path``. Use as a context manager; ``wait`` (threads) or
    ``wait_async`` (one event loop) returns True when woken, False after the timeout (the caller then polls)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._woken = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_woken: asyncio.Event | None = None
        self._target: tuple[str, str] | None = None
        self._inotify = _inotify()
        self.retarget()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._inotify is not None and self._target is not None:
            self._inotify.unwatch(*self._target, self)
        self._target = None

    @property
    def watching(self) -> bool:
        """Whether wake-ups can come (inotify watches the file's directory or the nearest existing one)."""
        return self._target is not None

    def retarget(self) -> None:
        """Watch the file's directory, or while it is missing, the nearest existing directory on its path."""
        if self._inotify is None:
            return
        name, directory = self.path.name, self.path.parent
        while not directory.is_dir() and directory.parent != directory:
            name, directory = directory.name, directory.parent
        target = (str(directory), name)
        if target == self._target:
            return
        if self._target is not None:
            self._inotify.unwatch(*self._target, self)
        self._target = target if self._inotify.watch(*target, self) else None

    def wake(self) -> None:
        """Called from the inotify thread (and by tests): the file or its directory changed."""
        self._woken.set()
        loop, event = self._loop, self._async_woken
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(event.set)

    def _after_wait(self) -> None:
        target = self._target
        if target is None or target[0] != str(self.path.parent):
            self.retarget()  # a directory on the way may have appeared, or the watch was dropped

    def wait(self, timeout: float) -> bool:
        woken = self._woken.wait(timeout)
        self._woken.clear()
        self._after_wait()
        return woken

    async def wait_async(self, timeout: float) -> bool:
        if self._async_woken is None:
            self._loop = asyncio.get_running_loop()
            self._async_woken = asyncio.Event()
            if self._woken.is_set():
                self._async_woken.set()
        woken = True
        try:
            await asyncio.wait_for(self._async_woken.wait(), timeout)
        except TimeoutError:
            woken = False
        self._async_woken.clear()
        self._woken.clear()
        self._after_wait()
        return woken


def subscribe(path: Path) -> Subscription:
    """Wake-ups for a follower of ``path`` (close it when done: ``with subscribe(path) as wakeups: ...``)."""
    return Subscription(path)
