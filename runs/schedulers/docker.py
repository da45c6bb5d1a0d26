"""The Docker scheduler: one container per task execution on the engine named by ``DOCKER_HOST``.

Design notes (docs/schedulers.md, "Docker", says the same for operators):

- Clients are per thread. ``docker.DockerClient`` wraps a ``requests.Session`` whose thread-safety is not promised,
  so each thread that uses the scheduler gets its own client (and connection pool); the instance holds no other
  mutable state.
- ``start`` is idempotent by name: an existing container is adopted; a create that loses a race to another worker
  (409 Conflict) adopts the winner's container. A container that exists but was never started is started only when
  its creator is presumed dead (see ``ADOPT_GRACE``), because Docker restarts an exited container on ``start``,
  which would run the task twice.
- ``logs`` reads Docker's multiplexed log stream itself (``GET /containers/{id}/logs`` with ``timestamps=1``) so that
  it keeps the stream of every frame and can pass ``since`` with nanosecond precision (docker-py's ``logs()`` drops
  the stream type when streaming and only takes ``since`` as a float, which cannot hold nanoseconds).
"""

from __future__ import annotations

import calendar
import collections
import contextlib
import datetime as dt
import functools
import logging
import queue
import re
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from django.conf import settings
from docker.types import LogConfig
from docker.utils import parse_repository_tag

from runs.schedulers.base import (
    LABEL_IMAGE,
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    WRITABLE_PATHS,
    ContainerSpec,
    EngineUnavailable,
    ExecSession,
    Hardening,
    LogBatch,
    LogLine,
    NoSuchContainer,
    NoSuchImage,
    Scheduler,
    SchedulerError,
    Started,
    State,
    Status,
    check_adoptable,
    check_pull_allowed,
    prunable,
    truncation_note,
)

logger = logging.getLogger(__name__)

# Docker timestamps the stdout and stderr of a container in two goroutines and writes them under one lock, so the
# log is not strictly ordered by time: a line can carry a timestamp a few milliseconds older than the line before it
# (measured: up to 8 ms with two busy streams). A cursor therefore resumes from this far behind the newest timestamp
# returned, and counts the lines it already returned from there; only a reordering larger than this could lose a line.
LOG_REORDER_WINDOW_NS = 1_000_000_000
# A container found in the "created" state younger than this is presumed to be started by the worker that just
# created it; adoption waits for that instead of starting it a second time.
ADOPT_GRACE = 5.0
_STDOUT, _STDERR = 1, 2
_STREAMS = {_STDOUT: "stdout", _STDERR: "stderr"}
_UNSET_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
_NS = 1_000_000_000


def parse_rfc3339_ns(raw: str) -> int:
    """Nanoseconds since the epoch of a Docker RFC3339Nano timestamp (``2024-05-01T10:00:00.123456789Z``).

    Raises ValueError for anything else."""
    match = _RFC3339.match(raw)
    if not match:
        raise ValueError(f"not an RFC3339 timestamp: {raw!r}")
    return _epoch_seconds(match.group(1), match.group(3)) * _NS + int((match.group(2) or "").ljust(9, "0"))


@functools.lru_cache(maxsize=64)
def _epoch_seconds(date_time: str, zone: str) -> int:
    # Cached because consecutive log lines nearly always share their whole-second part.
    seconds = calendar.timegm(time.strptime(date_time, "%Y-%m-%dT%H:%M:%S"))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def format_rfc3339_ns(ns: int) -> str:
    """The UTC RFC3339Nano form of ``ns`` with all nine digits, as Docker writes log timestamps."""
    seconds, fraction = divmod(ns, _NS)
    return f"{_format_seconds(seconds)}.{fraction:09d}Z"


@functools.lru_cache(maxsize=64)
def _format_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _ns_to_datetime(ns: int) -> dt.datetime:
    seconds, fraction = divmod(ns, _NS)
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).replace(microsecond=fraction // 1000)


def _engine_time(raw: str | None) -> dt.datetime | None:
    """A time from ``docker inspect``; Docker writes the zero time (year 1) for "never"."""
    if not raw or raw.startswith("0001-01-01"):
        return None
    return _ns_to_datetime(parse_rfc3339_ns(raw))


@contextlib.contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """Turn transport failures into EngineUnavailable and unexpected API errors into SchedulerError."""
    try:
        yield
    except SchedulerError:
        raise
    except docker.errors.APIError as exc:  # before RequestException: APIError is a requests HTTPError
        # 5xx can be a daemon hiccup; 4xx means the request itself is wrong and will stay wrong.
        permanent = exc.status_code is not None and exc.status_code < 500
        raise SchedulerError(f"Docker refused {doing}: {exc.explanation or exc}", permanent=permanent) from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
        raise EngineUnavailable(f"Docker engine unavailable while {doing}: {exc}") from exc
    except docker.errors.DockerException as exc:
        # from_env() raises a bare DockerException when it cannot reach the engine to negotiate the API version.
        raise EngineUnavailable(f"Docker engine unavailable while {doing}: {exc}") from exc


class _ResumePoint:
    """Which lines a ``logs`` call must skip, and the cursor after each line it returns.

    A cursor ``{"since": S, "skip": n}`` means: of the lines Docker returns for ``since=S`` (those stamped at or after
    S, in log order), the first ``n`` were already returned. S trails the newest timestamp returned so far by
    LOG_REORDER_WINDOW_NS, so a line logged later but stamped slightly earlier is still ahead of the cursor. The
    already-returned lines stamped at or after S are the first ones Docker sends back, because the log is append-only
    and every returned line precedes every new one in it.
    """

    def __init__(self, cursor: dict[str, Any] | None) -> None:
        self.floor: int | None = None  # lines stamped before this were dealt with by an earlier call
        self.to_skip = 0
        if cursor is not None:
            try:
                self.floor = parse_rfc3339_ns(str(cursor["since"]))
                self.to_skip = int(cursor.get("skip", 0))
            except (KeyError, TypeError, ValueError) as exc:
                raise SchedulerError(f"invalid Docker log cursor {cursor!r}", permanent=True) from exc
            if self.to_skip < 0:
                raise SchedulerError(f"invalid Docker log cursor {cursor!r}", permanent=True)
        self.since = self.floor
        # The newest timestamp returned is at least since + window (that is how since was chosen).
        self.newest = None if self.floor is None else self.floor + LOG_REORDER_WINDOW_NS
        # Sorted timestamps of the returned lines stamped at or after self.since. A deque, because lines arrive
        # nearly in time order: appending and trimming the front are the common cases, both O(1).
        self.returned: collections.deque[int] = collections.deque()

    def is_new(self, ts: int) -> bool:
        """Whether the next line in log order, stamped ``ts``, comes after the cursor."""
        if self.floor is not None and ts < self.floor:
            return False
        if self.to_skip:
            self.to_skip -= 1
            self._insert(ts)
            return False
        return True

    def _insert(self, ts: int) -> None:
        returned = self.returned
        if not returned or ts >= returned[-1]:
            returned.append(ts)
            return
        # Stamped before a line already returned: rare, and only by milliseconds, so it belongs near the end.
        index = len(returned) - 1
        while index > 0 and returned[index - 1] > ts:
            index -= 1
        returned.insert(index, ts)

    def advance(self, ts: int) -> dict[str, Any]:
        """Record that the line stamped ``ts`` was returned; the cursor right after it."""
        self.step(ts)
        return self.cursor()

    def step(self, ts: int) -> None:
        """Record that the line stamped ``ts`` was returned (``cursor()`` then gives the cursor right after it)."""
        if self.since is None or ts >= self.since:
            self._insert(ts)
        if self.newest is None or ts > self.newest:
            self.newest = ts
        since = self.newest - LOG_REORDER_WINDOW_NS
        if self.since is None or since > self.since:
            self.since = since
        returned, floor = self.returned, self.since
        while returned and returned[0] < floor:
            returned.popleft()

    def cursor(self) -> dict[str, Any]:
        """The cursor right after the last line recorded by ``step``."""
        assert self.since is not None
        return {"since": format_rfc3339_ns(self.since), "skip": len(self.returned)}


class _Deadline:
    """Ends a streaming response after ``seconds`` by shutting its socket down from a timer thread.

    Closing a socket does not wake a thread blocked in ``recv`` on Linux; ``shutdown`` does (the read returns EOF).
    ``disarm`` must be called as soon as the stream is finished with, so that a late timer cannot shut down a
    connection that went back to the pool and now serves another request.
    """

    def __init__(self, sock: Any, seconds: float) -> None:
        self._sock = getattr(sock, "_sock", sock)
        self._lock = threading.Lock()
        self._armed = True
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.expired = True
            self._armed = False
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


class _Body:
    """Exact-size reads from a streamed response body, cut from a buffer filled in as few reads as possible.

    A finite body (no follow) is read in large blocks. A followed body is read with ``read1``, which returns what
    has arrived instead of waiting for a full block that may never come; Docker sends each frame as its own HTTP
    chunk, so this costs one read per line, which is why finite reads do not use it."""

    def __init__(self, raw: Any, *, live: bool) -> None:
        self._raw = raw
        # urllib3 1.26 has no read1; its read(n) then serves, with n no larger than what is surely coming.
        self._read1 = getattr(raw, "read1", None) if live else None
        self._live = live
        self._buffer = bytearray()

    def take(self, size: int) -> bytes | None:
        """``size`` bytes, or None if the body ends first (a cut frame is dropped, never returned)."""
        while len(self._buffer) < size:
            wanted = size - len(self._buffer)
            if self._read1 is not None:
                chunk = self._read1(max(wanted, 65536))
            else:
                chunk = self._raw.read(wanted if self._live else max(wanted, 65536))
            if not chunk:
                return None
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _frames(raw: Any, *, live: bool = False) -> Iterator[tuple[int, bytes]]:
    """The (stream, payload) frames of Docker's multiplexed stream: an 8-byte header (stream type, 3 zero bytes,
    big-endian length) before each payload. With ``timestamps=1`` every frame is one log message. ``live``: the
    body is a followed stream that stays open while the container runs."""
    body = _Body(raw, live=live)
    while True:
        header = body.take(8)
        if header is None:
            return
        stream, length = struct.unpack(">BxxxL", header)
        payload = body.take(length) if length else b""
        if payload is None:
            return
        yield stream, payload


# The most bytes one read of a log stream asks for: what has arrived, up to this, becomes one batch of lines.
LOG_READ_BYTES = 256 * 1024


def _chunked_socket_file(response: Any) -> Any | None:
    """The buffered socket file under ``response`` when its body is HTTP-chunked and nobody has read from it yet
    (then the body can be de-chunked here, many chunks per read), else None."""
    http_response = getattr(getattr(response, "raw", None), "_fp", None)  # http.client's, under urllib3's
    if http_response is None or not getattr(http_response, "chunked", False):
        return None
    if getattr(http_response, "chunk_left", 0) is not None:
        return None  # http.client has started on the body
    socket_file = getattr(http_response, "fp", None)
    return socket_file if hasattr(socket_file, "read1") else None


def _dechunked(socket_file: Any) -> Iterator[bytes]:
    """The data of a chunked HTTP body in blocks: each block is the chunk data that one read from the socket
    completed, so a block is whatever had arrived, never waiting for more. Docker sends every log frame as its own
    chunk; http.client (and so urllib3's ``read1``) returns one chunk per call, this reads hundreds at once. Ends at
    the last chunk, or when the stream ends or breaks before it (a cut chunk is dropped)."""
    buf = b""
    left = 0  # bytes of the current chunk's data still to come
    crlf = 0  # bytes of the CRLF that ends a chunk's data still to skip
    while True:
        more = socket_file.read1(LOG_READ_BYTES)
        if not more:
            return
        buf = buf + more if buf else more
        out = []
        pos, size = 0, len(buf)
        while pos < size:
            if left:
                take = min(left, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                left -= take
                if not left:
                    crlf = 2
            elif crlf:
                skip = min(crlf, size - pos)
                pos += skip
                crlf -= skip
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > 1024:
                        raise ValueError("a chunk size line longer than 1 KiB in a Docker log stream")
                    break
                length = int(buf[pos:eol].split(b";", 1)[0], 16)  # ValueError for garbage: the stream broke
                pos = eol + 2
                if length == 0:
                    if out:
                        yield b"".join(out)
                    return
                left = length
        buf = buf[pos:]
        if out:
            yield b"".join(out)


def _frame_blocks(response: Any, *, live: bool) -> Iterator[list[tuple[int, bytes]]]:
    """Docker's multiplexed (stream, payload) frames, in blocks: a block holds the complete frames one read brought.
    Without a chunked body to read directly (never seen from Docker), frames come from ``_frames``: one per block
    when following, so that none waits for the next."""
    socket_file = _chunked_socket_file(response)
    if socket_file is None:
        block: list[tuple[int, bytes]] = []
        for frame in _frames(response.raw, live=live):
            block.append(frame)
            if live or len(block) >= 2000:
                yield block
                block = []
        if block:
            yield block
        return
    rest = b""
    for data in _dechunked(socket_file):
        if rest:
            data = rest + data
        frames = []
        pos, size = 0, len(data)
        while size - pos >= 8:
            stop = pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
            if stop > size:
                break
            frames.append((data[pos], data[pos + 8 : stop]))
            pos = stop
        rest = data[pos:]
        if frames:
            yield frames


# Whole-second parts of log timestamps already converted (b"2024-05-01T10:00:00" -> epoch seconds).
_SECONDS: dict[bytes, int] = {}


def _log_timestamp_ns(raw: bytes) -> int:
    """``parse_rfc3339_ns`` of a log frame's timestamp, quicker for the form Docker writes (nine digits, UTC)."""
    if len(raw) == 30 and raw[19] == 46 and raw[29] == 90:  # "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"
        fraction = raw[20:29]
        seconds = _SECONDS.get(raw[:19])
        if seconds is not None and fraction.isdigit():
            return seconds * _NS + int(fraction)
        ns = parse_rfc3339_ns(raw.decode("ascii", errors="replace"))
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[raw[:19]] = ns // _NS
        return ns
    return parse_rfc3339_ns(raw.decode("ascii", errors="replace"))


# What a failed pull says, in the words a user may see. Checked in order: a dial error ("lookup x: no such host")
# must not read as a missing image.
_UNREACHABLE = ("connection refused", "no such host", "timeout", "timed out", "network is unreachable", "dial tcp")
_REFUSED = ("unauthorized", "authentication required", "denied", "forbidden", "no basic auth")
_MISSING = ("manifest unknown", "not found", "does not exist", "no such", "name unknown")
_PULL_FAILURES = (
    (_UNREACHABLE, "the registry could not be reached"),
    (("x509", "certificate", "tls:"), "the registry's TLS certificate was not accepted"),
    (_REFUSED, "the registry refused access"),
    (("toomanyrequests", "rate limit"), "the registry is limiting requests; try again later"),
    (_MISSING, "the registry has no such image"),
)


def summarise_pull_error(raw: str) -> str:
    """A pull error in a few fixed words: never the registry's own response, which may be anything it chooses."""
    lowered = raw.lower()
    for needles, summary in _PULL_FAILURES:
        if any(needle in lowered for needle in needles):
            return summary
    return "the pull failed (the server log has the engine's message)"


def _shares_host_network(network_mode: str) -> bool:
    return network_mode == "host"


def published_ports(ports: dict[int, int], network_mode: str, host: str) -> dict[str, Any]:
    """The create_container/HostConfig arguments that make each container port of ``ports`` reachable on ``host`` at
    its host port. Nothing for a container on the host's network (its ports are the host's already) or on no network
    (there is nothing to publish to: Docker refuses port bindings there)."""
    if not ports or _shares_host_network(network_mode) or network_mode == "none":
        return {}
    return {
        "ports": sorted(ports),
        "port_bindings": {container: (host, published) for container, published in sorted(ports.items())},
    }


def _hardening_host_config(hardening: Hardening) -> dict[str, Any]:
    """The HostConfig settings that lock a task's container down (docs/security.md, "Task containers")."""
    config: dict[str, Any] = {}
    if hardening.capabilities is not None:
        config["cap_drop"] = ["ALL"]
        config["cap_add"] = list(hardening.capabilities) or None
    if hardening.no_new_privileges:
        config["security_opt"] = ["no-new-privileges:true"]
    if hardening.pids_limit:
        config["pids_limit"] = hardening.pids_limit
    if hardening.read_only_rootfs:
        config["read_only"] = True
        size = f"size={hardening.tmpfs_mib}m"
        # mode 1777 as /tmp always is; the task's user may be anyone.
        config["tmpfs"] = {path: f"rw,nosuid,nodev,{size},mode=1777" for path in WRITABLE_PATHS}
    if hardening.log_max_bytes:
        config["log_config"] = LogConfig(
            type=LogConfig.types.JSON,
            config={"max-size": str(hardening.log_max_bytes), "max-file": str(hardening.log_max_files or 1)},
        )
    return config


class _HeldLine:
    """The pieces of one log line so far, up to ``limit`` bytes kept; what is beyond is only counted. Adding a piece
    costs its own length, whatever the line's."""

    __slots__ = ("dropped", "limit", "parts", "size", "ts")

    def __init__(self, ts: int, limit: int) -> None:
        self.ts = ts
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if room >= len(data):
            self.parts.append(data)
            self.size += len(data)
            return
        if room > 0:
            self.parts.append(data[:room])
            self.size += room
        self.dropped += len(data) - max(room, 0)


class _DockerExecSession(ExecSession):
    """An exec with a TTY over Docker's hijacked connection.

    Reading goes through the HTTP response's buffered reader, not the raw socket: output that arrived together with
    the 101 response headers is already in that buffer. A pump thread turns blocking reads into ``recv(timeout)``.
    """

    # How many rounds of Ctrl-C, Ctrl-D ``close`` types before it lets a command that ignores them run on.
    CLOSE_ATTEMPTS = 3

    def __init__(self, sock: Any) -> None:
        self._socket = getattr(sock, "_sock", sock)
        response = getattr(sock, "_response", None)
        self._reader = response.raw._fp.fp if response is not None else sock
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._ended = False
        self._pump = threading.Thread(target=self._run_pump, name="gofer-docker-exec", daemon=True)
        self._pump.start()

    def _run_pump(self) -> None:
        try:
            while True:
                read = getattr(self._reader, "read1", None) or self._reader.read
                data = read(65536)
                if not data:
                    break
                self._queue.put(data)
        except (OSError, ValueError):
            pass  # closed under us by close(), or the connection dropped: either way the session ended
        finally:
            self._queue.put(None)

    def send(self, data: bytes) -> None:
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise SchedulerError(f"the attached command no longer accepts input: {exc}", permanent=True) from exc

    def recv(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        try:
            chunk = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return b""
        if chunk is None:
            self._ended = True
            return None
        # Hand over everything already waiting, so callers are not paced by the queue.
        parts = [chunk]
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)
                break
            parts.append(more)
        return b"".join(parts)

    def close(self) -> None:
        # Docker never ends an exec whose client went away (moby/moby#9098): a shell left behind would wait at its
        # prompt for as long as the task runs. Type what ends a terminal session instead: Ctrl-C for the foreground
        # program, then Ctrl-D for a shell at an empty prompt (separately: the Ctrl-C flushes the TTY's input).
        for _ in range(self.CLOSE_ATTEMPTS):
            if not self._pump.is_alive():
                break
            for keys, wait in ((b"\x03", 0.2), (b"\x04", 0.5)):
                with contextlib.suppress(OSError):
                    self._socket.sendall(keys)
                self._pump.join(timeout=wait)
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._socket.close()
        self._pump.join(timeout=2)


def _digest_of(image: dict[str, Any], requested: str) -> str:
    """What ran, from the image's attributes: its registry digest (``repo@sha256:...``) for the repository asked for
    when it has one, else another of its digests, else its local id."""
    digests = image.get("RepoDigests") or []
    repository = parse_repository_tag(requested)[0]
    for digest in digests:
        if digest.split("@", 1)[0] == repository:
            return digest
    return digests[0] if digests else image["Id"]


class DockerScheduler(Scheduler):
    """Containers on a Docker engine (``DOCKER_HOST``, or the local socket). Safe to share between threads."""

    name = "docker"

    def __init__(self, client_factory: Callable[[], docker.DockerClient] | None = None) -> None:
        self._client_factory = client_factory or (lambda: docker.from_env(timeout=settings.GOFER_DOCKER_TIMEOUT))
        self._local = threading.local()
        self._clients: weakref.WeakSet[docker.DockerClient] = weakref.WeakSet()
        self._clients_lock = threading.Lock()
        self._tty: dict[str, bool] = {}
        self._tty_lock = threading.Lock()

    def ping(self) -> None:
        try:
            self._client().ping()
        except Exception as exc:
            raise EngineUnavailable(f"cannot reach the Docker engine: {exc}") from exc

    def _client(self) -> docker.DockerClient:
        client = getattr(self._local, "client", None)
        if client is None:
            with _engine_errors("connecting"):
                client = self._client_factory()
            self._local.client = client
            with self._clients_lock:
                self._clients.add(client)
        return client

    # --- start -------------------------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> Started:
        """Run ``spec`` or adopt the container named ``spec.name``.

        Raises NoSuchImage when the image is neither local nor pullable, EngineUnavailable when Docker cannot be
        reached, and a permanent SchedulerError when the container was created but Docker could not start it (a
        missing executable, say); the container then stays, in the "created" state, for ``find`` and ``remove``."""
        with _engine_errors(f"starting {spec.name}"):
            client = self._client()
            # No look for an existing container first: creating one under a name that exists is a 409, which
            # adopts it below (a worker that died after its create, or another worker that was faster).
            image = self._ensure_image(client, spec)
            labels = {**spec.labels, LABEL_MANAGED: "true", LABEL_IMAGE: spec.image}
            hardening = spec.hardening
            network_mode = settings.GOFER_DOCKER_NETWORK_MODE
            # An extension's service: its port published on GOFER_EXTENSION_HOST, where Gofer calls it.
            publish = published_ports(spec.ports, network_mode, settings.GOFER_EXTENSION_HOST)
            host_config = client.api.create_host_config(
                network_mode=network_mode or None,
                port_bindings=publish.get("port_bindings"),
                # Decimal(str(...)): a task's cpu may arrive as a float or a string from JSON; 0.1 must stay exact.
                nano_cpus=int(Decimal(str(spec.cpu)) * _NS) if spec.cpu else None,
                mem_limit=int(spec.memory_mib) * 1024 * 1024 if spec.memory_mib else None,
                # A tiny init as PID 1 forwards SIGTERM to the task and reaps zombies; without it a shell as PID 1
                # ignores SIGTERM and a graceful stop always ends in SIGKILL after the grace period.
                init=settings.GOFER_DOCKER_INIT or None,
                **_hardening_host_config(hardening),
            )
            try:
                created = client.api.create_container(
                    # The image by the id just inspected, not by its name: what runs is exactly the image whose
                    # digest is recorded, even if a concurrent pull moves the tag in between.
                    image=image["Id"],
                    name=spec.name,
                    command=spec.command,
                    entrypoint=spec.entrypoint,
                    environment=dict(spec.env),
                    labels=labels,
                    host_config=host_config,
                    ports=publish.get("ports"),
                    detach=True,
                    tty=False,
                    stdin_open=False,
                    user=hardening.user or None,
                )
            except docker.errors.ImageNotFound as exc:
                raise NoSuchImage(f"image {spec.image!r} disappeared before its container was created") from exc
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                # Another worker created it between our lookup and our create: theirs is the one. Docker reserves
                # the name before the container can be inspected, so it may take a moment to appear.
                give_up = time.monotonic() + ADOPT_GRACE
                while (existing := self._inspect_named(client, spec.name)) is None and time.monotonic() < give_up:
                    time.sleep(0.05)
                if existing is None:
                    raise
                return self._adopt(client, existing, spec)
            handle = created["Id"]
            self._remember_tty(handle, False)  # created without one, above: its logs need no inspect to know
            self._start_container(client, handle, spec.name)
            return Started(handle=handle, image_digest=_digest_of(image, spec.image))

    def _adopt(self, client: docker.DockerClient, attrs: dict[str, Any], spec: ContainerSpec) -> Started:
        check_adoptable(spec, (attrs.get("Config") or {}).get("Labels"))
        handle = attrs["Id"]
        state = attrs.get("State") or {}
        if state.get("Status") == "created" and _engine_time(state.get("StartedAt")) is None:
            if state.get("Error"):
                raise SchedulerError(f"container {spec.name} could not start: {state['Error']}", permanent=True)
            created_at = _engine_time(attrs.get("Created")) or dt.datetime.now(dt.UTC)
            deadline = time.monotonic() + max(ADOPT_GRACE - (dt.datetime.now(dt.UTC) - created_at).total_seconds(), 0)
            while time.monotonic() < deadline:
                time.sleep(0.1)
                state = client.api.inspect_container(handle).get("State") or {}
                if state.get("Status") != "created":
                    break
            else:
                # Its creator died between create and start (or never got to start it): start it ourselves.
                self._start_container(client, handle, spec.name)
        return Started(handle=handle, image_digest=self._digest(client, handle, spec.image), adopted=True)

    def _start_container(self, client: docker.DockerClient, handle: str, name: str) -> None:
        try:
            client.api.start(handle)
        except docker.errors.APIError as exc:
            if exc.status_code is not None and exc.status_code >= 500 and "OCI runtime" not in str(exc):
                raise
            raise SchedulerError(f"container {name} could not start: {exc.explanation or exc}", permanent=True) from exc

    def _ensure_image(self, client: docker.DockerClient, spec: ContainerSpec) -> dict[str, Any]:
        """The image ``spec`` names, pulled first when it is missing or ``always_pull`` says so: its attributes
        (``docker image inspect``)."""
        try:
            attrs = client.api.inspect_image(spec.image)
        except docker.errors.ImageNotFound:
            attrs = None
        present = attrs is not None
        if present and not spec.always_pull:
            return attrs
        check_pull_allowed(spec)
        repository, tag = parse_repository_tag(spec.image)
        # Without credentials of its own a task pulls anonymously: an empty auth config, never None, because with
        # None the docker SDK would send the worker user's own saved login (~/.docker/config.json) for that registry.
        auth = (
            {"username": spec.registry_auth.user, "password": spec.registry_auth.password} if spec.registry_auth else {}
        )
        errors: list[str] = []
        try:
            for message in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True, auth_config=auth):
                # The engine reports a failed pull inside a 200 response's progress stream.
                if isinstance(message, dict) and message.get("error"):
                    errors.append(str(message["error"]))
        except docker.errors.APIError as exc:
            errors.append(str(exc.explanation or exc))
        if errors:
            # The registry's own words (its error bodies, the daemon's dial errors with addresses) stay in the
            # operator's log: a user sees what kind of failure it was, never what the remote end answered.
            logger.warning("pulling %s failed: %s", spec.image, errors[-1][:2000])
            why = summarise_pull_error(errors[-1])
            if present:
                raise NoSuchImage(f"always_pull is set for {spec.image!r} and pulling it failed: {why}")
            raise NoSuchImage(f"image {spec.image!r} is not on this Docker host and could not be pulled: {why}")
        try:
            return client.api.inspect_image(spec.image)
        except docker.errors.ImageNotFound as exc:
            raise NoSuchImage(f"pulling {spec.image!r} ended without the image") from exc

    def _digest(self, client: docker.DockerClient, handle: str, requested: str) -> str:
        """What an adopted container runs: its image's digest (see ``_digest_of``)."""
        image_id = client.api.inspect_container(handle)["Image"]
        try:
            image = client.api.inspect_image(image_id)
        except docker.errors.ImageNotFound:
            return image_id  # deleted since: the id is still the truth
        return _digest_of(image, requested)

    # --- inspection --------------------------------------------------------------------------------------------

    def _inspect_named(self, client: docker.DockerClient, name: str) -> dict[str, Any] | None:
        try:
            attrs = client.api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        # Docker also resolves a name as an id prefix; only an exact name is ours.
        return attrs if attrs.get("Name") == f"/{name}" else None

    def find(self, name: str) -> str | None:
        with _engine_errors(f"looking for {name}"):
            attrs = self._inspect_named(self._client(), name)
        return attrs["Id"] if attrs else None

    def status(self, handle: str) -> Status:
        """The container's state. ``exit_code`` is set once it has exited (or failed to start), ``message`` carries
        Docker's error or the OOM kill. A removed container is MISSING, not an error."""
        with _engine_errors(f"inspecting {handle[:12]}"):
            try:
                attrs = self._client().api.inspect_container(handle)
            except docker.errors.NotFound:
                return Status(State.MISSING)
        state = attrs.get("State") or {}
        docker_status = state.get("Status", "")
        started_at = _engine_time(state.get("StartedAt"))
        finished_at = _engine_time(state.get("FinishedAt"))
        notes = []
        if state.get("OOMKilled"):
            notes.append("killed: out of memory")
        if state.get("Error"):
            notes.append(state["Error"])
        message = "; ".join(notes)
        exit_code = state.get("ExitCode")
        if docker_status == "created":
            if state.get("Error"):  # start failed: it will never run
                return Status(State.EXITED, exit_code, started_at, finished_at, message)
            return Status(State.PENDING, None, None, None, message)
        if docker_status in {"running", "paused", "restarting"}:
            return Status(State.RUNNING, None, started_at, None, message)
        if docker_status in {"exited", "dead"} or (docker_status == "removing" and finished_at):
            if docker_status == "dead":
                message = message or "Docker marked the container dead"
            return Status(State.EXITED, exit_code, started_at, finished_at, message)
        return Status(State.UNKNOWN, None, started_at, finished_at, message or f"Docker state {docker_status!r}")

    # --- logs ----------------------------------------------------------------------------------------------------

    def logs(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogLine]:
        """Lines after ``cursor`` in log order, stdout and stderr told apart, each with the cursor right after it.

        Without ``follow_for``: the lines Docker has now. With it: also the lines that come within that many
        seconds, returning as soon as the container has exited and its log is read. A line the container has not
        finished writing (no newline yet) is held back until it is complete or the container has exited.

        Docker may end a followed stream at the container's exit before it sent the last lines (seen under load):
        what follows the last cursor then comes with the next call without ``follow_for``, which is why the engine
        reads once more after an exit (runs/engine/driving.py, the drain).
        """
        point = _ResumePoint(cursor)
        for block in self._read_log(handle, point, follow_for, each_cursor=True):
            for ts, stream, text, line_cursor in block:
                yield LogLine(time=_ns_to_datetime(ts), stream=stream, text=text, cursor=line_cursor)

    def log_batches(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogBatch]:
        """The lines of ``logs()``, one batch per read of Docker's stream: what had arrived at once, so that a line
        is handed over as soon as it is read, and a fast container's lines come thousands at a time. Only the last
        line's cursor is computed (the cursor of a batch)."""
        point = _ResumePoint(cursor)
        for block in self._read_log(handle, point, follow_for, each_cursor=False):
            yield LogBatch(block, point.cursor())

    def _read_log(
        self,
        handle: str,
        point: _ResumePoint,
        follow_for: float,
        *,
        each_cursor: bool,
    ) -> Iterator[list[tuple]]:
        """Blocks of new lines ``(ts, stream, text)``, with each line's cursor as a fourth item when
        ``each_cursor``; ``point`` is advanced past each block when it is yielded."""
        deadline_at = time.monotonic() + follow_for if follow_for > 0 else None
        client = self._client()
        with _engine_errors(f"reading the logs of {handle[:12]}"):
            if self._has_tty(client, handle):
                # Gofer never creates TTY containers; their log has no stream frames to split lines on.
                raise SchedulerError(f"container {handle[:12]} has a TTY; its logs cannot be read", permanent=True)
            params: dict[str, Any] = {
                "stdout": 1,
                "stderr": 1,
                "timestamps": 1,
                "follow": 1 if deadline_at else 0,
                "tail": "all",
            }
            if point.floor is not None:
                # One nanosecond earlier: correct whether Docker's "since" is inclusive (it is) or not.
                params["since"] = "{}.{:09d}".format(*divmod(point.floor - 1, _NS))
            response = client.api._get(client.api._url("/containers/{0}/logs", handle), params=params, stream=True)
            try:
                client.api._raise_for_status(response)
            except docker.errors.NotFound as exc:
                response.close()
                raise NoSuchContainer(f"no container {handle[:12]}") from exc
            except docker.errors.APIError:
                response.close()
                raise
        deadline = None
        if deadline_at is not None:
            raw_socket = client.api._get_raw_response_socket(response)
            # The deadline bounds the wait, not the socket timeout: a silent container is not a dead engine.
            client.api._disable_socket_timeout(raw_socket)
            deadline = _Deadline(raw_socket, deadline_at - time.monotonic())
        try:
            yield from self._line_blocks(handle, response, point, deadline, each_cursor)
        finally:
            if deadline is not None:
                deadline.disarm()
            response.close()

    def _has_tty(self, client: docker.DockerClient, handle: str) -> bool:
        # A container's TTY setting never changes; remembering it saves a request per logs() call, which counts
        # when a watcher resumes every few seconds.
        with self._tty_lock:
            known = self._tty.get(handle)
        if known is not None:
            return known
        try:
            tty = bool(client.api.inspect_container(handle)["Config"].get("Tty"))
        except docker.errors.NotFound as exc:
            raise NoSuchContainer(f"no container {handle[:12]}") from exc
        self._remember_tty(handle, tty)
        return tty

    def _remember_tty(self, handle: str, tty: bool) -> None:
        with self._tty_lock:
            if len(self._tty) >= 4096:
                self._tty.clear()
            self._tty[handle] = tty

    def _line_blocks(
        self,
        handle: str,
        response: Any,
        point: _ResumePoint,
        deadline: _Deadline | None,
        each_cursor: bool,
    ) -> Iterator[list[tuple]]:
        # Docker splits a line longer than 16 KiB into several messages that share the first one's timestamp and
        # lack the newline until the last one; a message without a newline is held here until it is completed.
        # Held pieces are kept in a list (joining each new piece onto the whole was quadratic: a 100 MB line took
        # minutes) and only up to GOFER_LOG_MAX_LINE_BYTES of them: the rest is counted, not kept.
        pending: dict[int, _HeldLine] = {}
        limit = settings.GOFER_LOG_MAX_LINE_BYTES
        out: list[tuple] = []

        def emit(stream: int, held: _HeldLine) -> None:
            if not point.is_new(held.ts):
                return
            text = b"".join(held.parts).decode("utf-8", errors="replace")
            if held.dropped:
                text += truncation_note(held.dropped)
            point.step(held.ts)
            line = (held.ts, _STREAMS.get(stream, "stdout"), text)
            out.append((*line, point.cursor()) if each_cursor else line)

        try:
            for frames in _frame_blocks(response, live=deadline is not None):
                for stream, payload in frames:
                    space = payload.find(b" ")
                    try:
                        ts = _log_timestamp_ns(payload[:space] if space >= 0 else payload)
                    except ValueError:
                        logger.warning("skipping a Docker log frame without a timestamp from %s", handle[:12])
                        continue
                    held = pending.pop(stream, None) if pending else None
                    complete = payload[-1] == 10  # b"\n"; a payload has at least its timestamp
                    if held is None and complete and len(payload) - space - 2 <= limit:
                        # The common case: a whole line in one message, within the limit.
                        if point.is_new(ts):
                            point.step(ts)
                            text = payload[space + 1 : -1].decode("utf-8", "replace")
                            line = (ts, _STREAMS.get(stream, "stdout"), text)
                            out.append((*line, point.cursor()) if each_cursor else line)
                        continue
                    if held is not None and held.ts != ts:
                        # Not a continuation: the held text was a final line without a newline.
                        emit(stream, held)
                        held = None
                    if held is None:
                        held = _HeldLine(ts, limit)
                    data = payload[space + 1 :] if space >= 0 else b""
                    held.add(data[:-1] if complete else data)
                    if complete:
                        emit(stream, held)
                    else:
                        pending[stream] = held
                if out:
                    yield out
                    out = []
        except (OSError, ValueError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            if deadline is not None and deadline.expired:
                if out:
                    yield out  # complete lines read before our own timer cut the stream
                return  # held text stays for the next call
            raise EngineUnavailable(f"the log stream of {handle[:12]} broke: {exc}") from exc
        if deadline is not None:
            deadline.disarm()
            if deadline.expired:
                return
        if pending and self._has_ended(handle, wait=deadline is not None):
            # The container is done writing: what is held is complete, in the order it was logged.
            for stream, held in sorted(pending.items(), key=lambda item: item[1].ts):
                emit(stream, held)
            if out:
                yield out

    def _has_ended(self, handle: str, *, wait: bool) -> bool:
        """Whether the container has stopped writing its log. A followed stream ends when the container's output
        closes, which Docker reports a moment before it records the exit, so ``wait`` allows for that moment."""
        give_up = time.monotonic() + (2.0 if wait else 0.0)
        while True:
            if self.status(handle).state in {State.EXITED, State.MISSING}:
                return True
            if time.monotonic() >= give_up:
                return False
            time.sleep(0.05)

    # --- stopping and cleaning -------------------------------------------------------------------------------------

    def _signal(self, handle: str, signal: str) -> None:
        with _engine_errors(f"sending {signal} to {handle[:12]}"):
            try:
                self._client().api.kill(handle, signal=signal)
            except docker.errors.NotFound:
                return  # nothing left to stop
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "is not running" in str(exc.explanation or exc):
                    return
                raise

    def stop(self, handle: str) -> None:
        """Send SIGTERM and return. A shell as PID 1 ignores it unless it traps it, as ``docker stop`` finds; the
        caller kills after its stop timeout. Does nothing if the container exited or is gone."""
        self._signal(handle, "SIGTERM")

    def kill(self, handle: str) -> None:
        """Send SIGKILL. Does nothing if the container exited or is gone."""
        self._signal(handle, "SIGKILL")

    def service_bind_host(self, host: str) -> str:
        """On a network of its own (Docker's default bridge) a service must listen on every interface of its
        container for the published port to reach it; on the host's network, on ``host`` only."""
        if _shares_host_network(settings.GOFER_DOCKER_NETWORK_MODE):
            return host
        return "0.0.0.0"  # noqa: S104 - inside the container's own network namespace; published on host only

    def remove(self, handle: str) -> None:
        """Remove the container (even if running) and its anonymous volumes. Missing is fine."""
        with _engine_errors(f"removing {handle[:12]}"):
            try:
                self._client().api.remove_container(handle, force=True, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc.explanation or exc):
                    return
                raise

    def exec(self, handle: str, command: list[str]) -> ExecSession:
        """Run ``command`` with a TTY inside the running container; its output arrives as one stream."""
        with _engine_errors(f"attaching to {handle[:12]}"):
            api = self._client().api
            try:
                exec_id = api.exec_create(handle, command, stdin=True, tty=True)["Id"]
            except docker.errors.NotFound as exc:
                raise NoSuchContainer(f"no container {handle[:12]}") from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise SchedulerError(f"cannot attach: {exc.explanation or exc}", permanent=True) from exc
                raise
            sock = api.exec_start(exec_id, socket=True, tty=True)
        return _DockerExecSession(sock)

    def prune(
        self, older_than: dt.timedelta, is_done: Callable[[str], bool], *, installation: str | None = None
    ) -> int:
        """Remove Gofer's containers (LABEL_MANAGED) that are not running, ended more than ``older_than`` ago (by
        Docker's finish time, or creation time for one that never started) and whose task execution ``is_done``
        accepts. Containers without a task execution label are left alone. Returns how many were removed."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        removed = 0
        with _engine_errors("pruning containers"):
            api = self._client().api
            summaries = api.containers(
                all=True, filters={"label": f"{LABEL_MANAGED}=true", "status": ["exited", "dead", "created"]}
            )
            for summary in summaries:
                try:
                    attrs = api.inspect_container(summary["Id"])
                except docker.errors.NotFound:
                    continue
                state = attrs.get("State") or {}
                if state.get("Status") not in {"exited", "dead", "created"}:
                    continue  # started since it was listed
                ended = _engine_time(state.get("FinishedAt")) or _engine_time(attrs.get("Created"))
                if ended is None or ended > cutoff:
                    continue
                labels = (attrs.get("Config") or {}).get("Labels") or {}
                execution = labels.get(LABEL_TASK_EXECUTION)
                if not execution or not prunable(labels, installation) or not is_done(execution):
                    continue
                self.remove(attrs["Id"])
                removed += 1
        return removed

    def close(self) -> None:
        with self._clients_lock:
            clients = list(self._clients)
            self._clients.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        self._local = threading.local()
