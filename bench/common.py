"""What the benchmarks share: a throw-away Gofer (home, database, server, workers), its API, Docker baselines,
statistics and result tables.

A ``Stack`` is a complete, real installation started from scratch and removed afterwards:

- a temporary ``GOFER_HOME`` (log files, secret key, the SQLite database by default);
- the database: a SQLite file, or with ``db="postgres"`` a scratch PostgreSQL database on 127.0.0.1:5432 (created
  here, dropped on exit);
- the broker and Channels layer: the database (django-q2's ORM broker, in-memory layer), or with ``redis=True`` Redis
  on 127.0.0.1:6379 under a queue name of its own (its keys are deleted on exit);
- ``manage.py migrate``, then real ``daphne`` and ``manage.py qcluster`` processes, configured the way an operator
  would (``DJANGO_SETTINGS_MODULE=gofer_site.settings`` and ``GOFER_*`` variables; nothing from the test suite);
- a bootstrap token and a namespace of its own (``bench-<id>``); every container Gofer starts for it carries the
  label ``dev.gofer.namespace=bench-<id>``, and only those (plus the baselines' own, labelled ``dev.gofer.bench``)
  are removed on exit.

Only the standard library and what requirements.txt / requirements-dev.txt install are used; no pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.image_builder import ensure_busybox_image  # noqa: E402 - needs REPO on sys.path

PYTHON = sys.executable
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"
REDIS_URL = "redis://127.0.0.1:6379/0"
# Containers the benchmarks start themselves (the baselines) carry this label with the stack's id.
BASELINE_LABEL = "dev.gofer.bench"
NAMESPACE_LABEL = "dev.gofer.namespace"
NO_OP = ["true"]


# --- Command line ----------------------------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes (the stack's configuration and the output)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    stack = p.add_argument_group("the Gofer under test")
    stack.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="database (postgres: scratch DB)")
    stack.add_argument("--redis", action="store_true", help="Redis as broker and channel layer (else the ORM broker)")
    stack.add_argument("--workers", type=int, default=8, help="GOFER_WORKERS: worker processes (Gofer's default)")
    stack.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server and workers, e.g. --set GOFER_DRIVE_SLICE_SECONDS=2 (repeatable)",
    )
    stack.add_argument(
        "--q-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a django-q2 option without a GOFER_* variable (poll, bulk, save_limit, recycle; broker_class=none: "
        "django-q2's own polling ORM broker), for experiments: "
        "selects bench/q_settings.py instead of gofer_site.settings (repeatable)",
    )
    stack.add_argument("--keep", action="store_true", help="keep GOFER_HOME (process logs, task logs) afterwards")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="PATH", help="also write the result rows as JSON to PATH (used by run_all.py)")
    return p


def stack_kwargs(args: argparse.Namespace, **env: str) -> dict[str, Any]:
    """The ``Stack(...)`` arguments from the command line; ``env`` are the benchmark's own settings, which ``--set``
    can still override."""
    extra = dict(env)
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set wants NAME=VALUE, not {item!r}")
        extra[name] = value
    for item in args.q_option:
        name, sep, value = item.partition("=")
        if not sep or name not in {"poll", "bulk", "save_limit", "recycle", "broker_class"}:
            raise SystemExit(f"--q-option wants poll|bulk|save_limit|recycle|broker_class=VALUE, not {item!r}")
        extra[f"BENCH_Q_{name.upper()}"] = value
    if args.q_option:
        # A benchmark's own settings module (bench/counting_settings.py) builds on q_settings: keep it.
        extra.setdefault("DJANGO_SETTINGS_MODULE", "bench.q_settings")
    return {"db": args.db, "redis": args.redis, "workers": args.workers, "env": extra, "keep": args.keep}


# --- Statistics ------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values) if values else math.nan,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": statistics.fmean(values) if values else math.nan,
    }


def docker_time(raw: str | None) -> float | None:
    """Epoch seconds (float, microsecond precision kept) of a Docker RFC3339Nano time; None for Docker's zero time."""
    if not raw or raw.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", raw)
    if not match:
        raise ValueError(f"not a Docker time: {raw!r}")
    base = dt.datetime.fromisoformat(match.group(1) + (match.group(3).replace("Z", "+00:00")))
    return base.timestamp() + int((match.group(2) or "0").ljust(9, "0")) / 1e9


# --- Results ---------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured quantity of Gofer against its baseline, both measured in this process on this machine.

    ``higher_is_better``: rates (per second) are; times are not. ``overhead`` is always "how many times worse
    Gofer is than the baseline": gofer/baseline for times, baseline/gofer for rates (1.0 = as fast)."""

    bench: str
    metric: str
    unit: str
    gofer: float
    baseline_name: str = ""
    baseline: float | None = None
    higher_is_better: bool = False
    note: str = ""
    overhead: float | None = field(default=None)
    # Issue 9's goal for this row, as text ("<= 1.10x"), and whether this measurement meets it (see goal()).
    goal: str = ""
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.overhead is None and self.baseline not in (None, 0) and self.gofer:
            ratio = self.gofer / self.baseline
            self.overhead = 1 / ratio if self.higher_is_better else ratio


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def goal(row: Row, text: str, met: bool) -> Row:
    """Mark ``row`` with its goal (issue 9) and whether it is met; the table prints "pass" or "MISS"."""
    row.goal, row.met = text, met
    return row


def table(rows: Iterable[Row], *, with_bench: bool = False) -> str:
    """A Markdown table of rows (also readable in a terminal)."""
    rows = list(rows)
    goals = any(r.goal for r in rows)
    header = (["benchmark"] if with_bench else []) + ["metric", "Gofer", "baseline", "baseline value", "× worse"]
    header += ["goal"] if goals else []
    lines = [header]
    for r in rows:
        cells = [r.metric, _fmt(r.gofer, r.unit), r.baseline_name or "-", _fmt(r.baseline, r.unit)]
        cells.append("-" if r.overhead is None else f"{r.overhead:.2f}×")
        if goals:
            cells.append(f"{r.goal}: {'pass' if r.met else 'MISS'}" if r.goal else "")
        lines.append(([r.bench] if with_bench else []) + cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def report(rows: list[Row], args: argparse.Namespace, context: dict[str, Any]) -> None:
    """Print the rows and, with ``--json``, write them with the context (configuration, machine)."""
    print()
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"  - {r.metric}: {r.note}")
    if args.json:
        Path(args.json).write_text(json.dumps({"context": context, "rows": [asdict(r) for r in rows]}, indent=1))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        client = docker.from_env(timeout=10)
        version = client.version()
        info["docker"] = version.get("Version")
        info["docker_storage"] = client.info().get("Driver")
        client.close()
    return info


def busy_neighbours() -> str:
    """A warning when something else is likely to load this machine (a test suite, another benchmark), else ""."""
    others = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if "pytest" in text or ("bench/" in text and "python" in text and int(entry.name) != os.getppid()):
            others.append(f"{entry.name}: {text[:80]}")
    load = Path("/proc/loadavg").read_text().split()[0]
    if not others:
        return ""
    return f"load average {load}; other processes that compete for the CPU: {'; '.join(others[:3])}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- CPU accounting --------------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (all cores; /proc/stat, idle and iowait excluded)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _group_seconds(pgid: int) -> float:
    """CPU-seconds of every live process in process group ``pgid``, plus what their reaped children used."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[0] is the state, [1] the ppid, [2] the process group
            total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLK_TCK


@dataclass
class Cpu:
    """CPU-seconds used between two snapshots: Gofer's server and workers, this benchmark process (the API
    clients), and everything else on the machine (dockerd, containerd, the shims, runc, the kernel, the database
    server and Redis when used)."""

    server: float
    workers: float
    client: float
    other: float
    wall: float

    @property
    def gofer(self) -> float:
        return self.server + self.workers

    def per(self, count: int) -> str:
        return (
            f"CPU-s per item: Gofer {self.gofer / count:.3f} (server {self.server / count:.3f}, workers "
            f"{self.workers / count:.3f}), bench client {self.client / count:.3f}, rest of the machine (Docker, "
            f"kernel, services) {self.other / count:.3f}; machine busy {self.busy / self.wall:.0%} of "
            f"{os.cpu_count()} cores"
        )

    @property
    def busy(self) -> float:
        return self.server + self.workers + self.client + self.other


class CpuMeter:
    """``with CpuMeter(stack) as cpu: ...`` then ``cpu.result`` (a Cpu)."""

    def __init__(self, stack: Stack | None = None) -> None:
        self.stack = stack
        self.result: Cpu | None = None

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        server = _group_seconds(self.stack.server.proc.pid) if self.stack and self.stack.server else 0.0
        workers = _group_seconds(self.stack.worker.proc.pid) if self.stack and self.stack.worker else 0.0
        own = os.times()
        return _machine_busy_seconds(), server, workers, own.user + own.system, time.monotonic()

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        machine, server, workers, client, wall = (b - a for a, b in zip(self._start, end, strict=True))
        self.result = Cpu(server, workers, client, max(machine - server - workers - client, 0.0), wall)


# --- Processes -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process in its own session (so it and what it forks are signalled together), output to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self, last: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-last:]

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the process itself (qcluster then stops its own children in order), SIGKILL to the whole
        group if it has not exited after ``timeout`` seconds, or if anything of the group is left over."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.log_path.name}: no exit {timeout} s after SIGTERM; SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self._log.close()


# --- The stack -------------------------------------------------------------------------------------------------------


class ApiError(RuntimeError):
    pass


@dataclass
class Trigger:
    """A run started through the API: its number and the wall-clock times (epoch seconds) around the POST."""

    pipeline_id: str
    run_id: int
    sent: float
    returned: float


class Stack:
    """A throw-away Gofer installation with real server and worker processes. Use as a context manager."""

    def __init__(
        self,
        db: str = "sqlite",
        redis: bool = False,
        workers: int = 8,
        env: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        if db not in {"sqlite", "postgres"}:
            raise ValueError(f"db must be sqlite or postgres, not {db!r}")
        self.db = db
        self.redis = redis
        self.workers = workers
        self.extra_env = dict(env or {})
        self.keep = keep
        self.id = uuid.uuid4().hex[:8]
        self.namespace = f"bench-{self.id}"
        self.queue_name = f"bench-{self.id}"
        self.pg_name = f"gofer_bench_{self.id}"
        self.home: Path | None = None
        self.server: Process | None = None
        self.worker: Process | None = None
        self.session = requests.Session()
        self.url = ""
        self.ws_url = ""
        self.token = ""
        self.image = ""
        self._pg_created = False
        self._django_ready = False

    # -- description

    def describe(self) -> dict[str, Any]:
        env = self.env()
        keys = sorted(
            k for k in env if k.startswith(("GOFER_", "BENCH_Q_")) and k not in {"GOFER_HOME", "GOFER_SECRET_KEY"}
        )
        return {
            "database": "PostgreSQL (scratch database)" if self.db == "postgres" else "SQLite (WAL) file",
            "broker": "Redis (django-q2 Redis broker, channels_redis)" if self.redis else "django-q2 ORM broker",
            "workers": self.workers,
            "settings": env["DJANGO_SETTINGS_MODULE"],
            "env": {k: env[k] for k in keys},
        }

    def label(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in sorted(self.extra_env.items()) if k != "DJANGO_SETTINGS_MODULE")
        return f"{self.db}+{'redis' if self.redis else 'orm'}, {self.workers} workers{extra}"

    # -- environment

    def env(self) -> dict[str, str]:
        """The environment of the server and worker processes (and of this process if it configures Django)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GOFER_", "BENCH_Q_")) and k != "DJANGO_SETTINGS_MODULE"
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "gofer_site.settings",
                "GOFER_HOME": str(self.home),
                "GOFER_SECRET_KEY": f"bench-only-{self.id}-not-a-secret-0123456789abcdef",
                "GOFER_WORKERS": str(self.workers),
                "GOFER_QUEUE_NAME": self.queue_name,
                "GOFER_SCHEDULER": "docker",
                "GOFER_DOCKER_NETWORK_MODE": "none",
                # Pruning would look at every Gofer-managed container on this engine, not only ours: off.
                "GOFER_CONTAINER_PRUNE_AFTER": "0",
                # The cluster's "Processed '<func>'" lines are how throughput.py counts queue steps per run.
                "GOFER_QUEUE_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.db == "postgres":
            env["GOFER_DATABASE_URL"] = PG_URL.format(name=self.pg_name)
        if self.redis:
            env["GOFER_REDIS_URL"] = REDIS_URL
        if self.url:
            env["GOFER_BIND"] = self.url.removeprefix("http://")
        env.update(self.extra_env)
        return env

    # -- life cycle

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        started = time.monotonic()
        self.home = Path(tempfile.mkdtemp(prefix=f"gofer-bench-{self.id}-"))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        log(f"stack {self.id}: {self.label()}, GOFER_HOME={self.home}")
        warning = busy_neighbours()
        if warning:
            log(f"WARNING: the numbers will be noisy: {warning}")
        if self.db == "postgres":
            self._create_pg()
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=self.env(), cwd=REPO, check=True, timeout=600
        )
        client = docker.from_env(timeout=120)
        try:
            self.image = ensure_busybox_image(client)
        finally:
            client.close()
        daphne = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "gofer_site.asgi:application"]
        self.server = Process(daphne, self.env(), self.home / "daphne.log")
        self.worker = Process([PYTHON, "manage.py", "qcluster"], self.env(), self.home / "qcluster.log")
        self._wait_ready()
        self.token = self.post("/api/tokens/bootstrap")["secret"]
        self.session.headers.update({"Authorization": f"Bearer {self.token}", "gofer-api-version": "v0"})
        self.post("/api/namespaces", {"id": self.namespace, "name": "Benchmarks", "description": "bench/"})
        self._wait_cluster()
        log(f"stack {self.id}: ready in {time.monotonic() - started:.1f} s ({self.url})")

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.server.output()}")
            if self.worker.proc.poll() is not None:
                raise RuntimeError(f"qcluster exited early:\n{self.worker.output()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/system/metadata", timeout=1).read()  # noqa: S310 - loopback
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer within {timeout} s:\n{self.server.output()}")

    def _wait_cluster(self, timeout: float = 120) -> None:
        """Wait until the cluster executes work, and warm it up: a worker's first step pays for its imports and its
        Docker client (about a second), which no measurement should include. Two runs of as many independent
        tasks as there are workers make it very likely that every worker process has done a start and a watch."""
        self.register("warmup", [task(f"noop{i}", self.image) for i in range(self.workers)])
        for _ in range(2):
            self.wait_runs([self.trigger("warmup")], timeout=timeout)

    def close(self) -> None:
        """Stop the processes, remove the containers, drop the database and the Redis keys, delete GOFER_HOME. A
        signal arriving meanwhile is ignored until the clean-up is done."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _close(self) -> None:
        for process in (self.worker, self.server):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        with contextlib.suppress(Exception):
            self.session.close()
        removed = self.remove_containers()
        if removed:
            log(f"stack {self.id}: removed {removed} containers")
        if self._pg_created:
            self._drop_pg()
        if self.redis:
            self._clean_redis()
        if self.home is not None:
            if self.keep:
                log(f"stack {self.id}: kept {self.home}")
            else:
                shutil.rmtree(self.home, ignore_errors=True)

    def remove_containers(self) -> int:
        """Remove the containers of this stack: Gofer's (its namespace label) and the baselines' (its bench label)."""
        removed = 0
        try:
            client = docker.from_env(timeout=120)
        except docker.errors.DockerException:
            return 0
        try:
            for label in (f"{NAMESPACE_LABEL}={self.namespace}", f"{BASELINE_LABEL}={self.id}"):
                for summary in client.api.containers(all=True, filters={"label": label}):
                    with contextlib.suppress(docker.errors.NotFound):
                        client.api.remove_container(summary["Id"], force=True, v=True)
                        removed += 1
        finally:
            client.close()
        return removed

    # -- scratch services

    def _create_pg(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        self._pg_created = True

    def _drop_pg(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        self._pg_created = False

    def _clean_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"django_q:{self.queue_name}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    # -- Django in this process (for django-q2's own API: the raw queue baseline)

    def setup_django(self) -> None:
        """Configure Django in this process with the stack's settings (once per process: settings are global)."""
        if self._django_ready:
            return
        os.environ.update({k: v for k, v in self.env().items() if k.startswith(("GOFER_", "DJANGO_", "BENCH_Q_"))})
        import logging

        import django

        django.setup()
        # django-q2 logs every enqueue at INFO; this process only enqueues.
        logging.getLogger("django-q").setLevel(logging.WARNING)
        self._django_ready = True

    # -- the API

    def call(self, method: str, path: str, body: Any = None, expect: Iterable[int] = (200, 201, 204)) -> Any:
        response = self.session.request(method, f"{self.url}{path}", json=body, timeout=120)
        if response.status_code not in set(expect):
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def pipeline_path(self, pipeline_id: str) -> str:
        return f"/api/namespaces/{self.namespace}/pipelines/{pipeline_id}"

    def register(self, pipeline_id: str, tasks: list[dict[str, Any]], parallelism: int = 0) -> None:
        """Register a pipeline config through the API and deploy it."""
        config = {"id": pipeline_id, "name": pipeline_id, "parallelism": parallelism, "tasks": tasks}
        base = self.pipeline_path(pipeline_id)
        version = self.post(f"{base}/configs", {"config": config})
        number = _find_key(version, "version") or 1
        self.post(f"{base}/configs/{number}")

    def trigger(self, pipeline_id: str, session: requests.Session | None = None) -> Trigger:
        """Start a run; the times are taken just before the request is sent and just after the response arrives."""
        session = session or self.session
        path = f"{self.url}{self.pipeline_path(pipeline_id)}/runs"
        sent = time.time()
        response = session.post(path, json={"variables": {}}, timeout=120)
        returned = time.time()
        if response.status_code != 201:
            raise ApiError(f"POST {path}: {response.status_code} {response.text[:500]}")
        return Trigger(pipeline_id, response.json()["run"]["run_id"], sent, returned)

    def new_session(self) -> requests.Session:
        """A session of its own for another thread (requests.Session is not promised to be thread-safe)."""
        session = requests.Session()
        session.headers.update(self.session.headers)
        return session

    def run(self, pipeline_id: str, run_id: int, session: requests.Session | None = None) -> dict[str, Any]:
        session = session or self.session
        response = session.get(f"{self.url}{self.pipeline_path(pipeline_id)}/runs/{run_id}", timeout=120)
        response.raise_for_status()
        return response.json()["run"]

    def list_runs(self, pipeline_id: str) -> list[dict[str, Any]]:
        """Every run of the pipeline (all pages)."""
        runs: list[dict[str, Any]] = []
        while True:
            page = self.get(f"{self.pipeline_path(pipeline_id)}/runs?limit=500&offset={len(runs)}")["runs"]
            runs.extend(page)
            if len(page) < 500:
                return runs

    def wait_all(self, pipeline_id: str, count: int, timeout: float = 900, poll: float = 0.5) -> list[dict[str, Any]]:
        """Poll the run list until ``count`` runs of the pipeline are complete (one request per page per poll)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.list_runs(pipeline_id)
            complete = [r for r in runs if r["state"] == "complete"]
            if len(complete) >= count:
                failed = [r for r in complete if r["status"] != "successful"]
                if failed:
                    raise RuntimeError(f"{len(failed)} runs of {pipeline_id} did not succeed, e.g. {failed[0]}")
                return complete
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(complete)}/{count} runs of {pipeline_id} complete after {timeout} s")
            time.sleep(poll)

    def task_executions(self, pipeline_id: str, run_id: int) -> list[dict[str, Any]]:
        return self.get(f"{self.pipeline_path(pipeline_id)}/runs/{run_id}/tasks")["task_executions"]

    def wait_runs(
        self,
        triggers: Sequence[Trigger],
        timeout: float = 600,
        poll: float = 0.05,
        session: requests.Session | None = None,
    ) -> list[dict[str, Any]]:
        """Poll each run until it is complete; returns the runs. Fails if one did not succeed."""
        deadline = time.monotonic() + timeout
        done: dict[int, dict[str, Any]] = {}
        for trigger in triggers:
            while True:
                run = self.run(trigger.pipeline_id, trigger.run_id, session)
                if run["state"] == "complete":
                    if run["status"] != "successful":
                        raise RuntimeError(f"run {trigger.pipeline_id}#{trigger.run_id} {run['status']}: {run}")
                    done[trigger.run_id] = run
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"run {trigger.pipeline_id}#{trigger.run_id} still {run['state']} after {timeout} s\n"
                        f"--- qcluster ---\n{self.worker.output()}"
                    )
                time.sleep(poll)
        return [done[t.run_id] for t in triggers]


def _find_key(data: Any, key: str) -> Any:
    """The first value of ``key`` anywhere in a JSON document (config responses nest the version)."""
    if isinstance(data, dict):
        if key in data and not isinstance(data[key], dict | list):
            return data[key]
        for value in data.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def task(task_id: str, image: str, command: list[str] | None = None, depends_on: dict[str, str] | None = None) -> dict:
    """A task of a pipeline config (Gofer v0 shape)."""
    spec: dict[str, Any] = {"id": task_id, "image": image, "command": command or NO_OP}
    if depends_on:
        spec["depends_on"] = depends_on
    return spec


# --- Docker baselines ------------------------------------------------------------------------------------------------


@dataclass
class DockerRun:
    """One baseline container: epoch times of the create request being sent, of Docker's own start (StartedAt),
    and of ``wait`` returning (the container has exited)."""

    container_id: str
    sent: float
    started_at: float
    finished_at: float
    ended: float


class Baseline:
    """Containers run directly through the Docker SDK, with what Gofer's Docker scheduler gives its containers:
    ``--network none``, ``--init`` (GOFER_DOCKER_INIT's default), no TTY, the same image and command."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._local = threading.local()
        self._clients: list[docker.DockerClient] = []
        self._lock = threading.Lock()

    def client(self) -> docker.DockerClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = docker.from_env(timeout=120)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def run(self, command: list[str] | None = None) -> DockerRun:
        """``docker run --network none --init IMAGE COMMAND`` and wait for it to exit (not removed here)."""
        api = self.client().api
        sent = time.time()
        created = api.create_container(
            image=self.stack.image,
            command=command or NO_OP,
            labels={BASELINE_LABEL: self.stack.id},
            host_config=api.create_host_config(network_mode="none", init=True),
            detach=True,
        )
        api.start(created["Id"])
        api.wait(created["Id"])
        ended = time.time()
        state = api.inspect_container(created["Id"])["State"]
        return DockerRun(created["Id"], sent, docker_time(state["StartedAt"]), docker_time(state["FinishedAt"]), ended)

    def run_many(self, count: int, concurrency: int, command: list[str] | None = None) -> tuple[float, list[DockerRun]]:
        """``count`` containers, ``concurrency`` at a time; returns the wall time and the runs."""
        started = time.monotonic()
        if concurrency <= 1:
            runs = [self.run(command) for _ in range(count)]
        else:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                runs = list(pool.map(lambda _: self.run(command), range(count)))
        return time.monotonic() - started, runs

    def cli_run(self, command: list[str] | None = None) -> float:
        """Wall time of ``docker run --rm --network none --init`` through the CLI (a process per container)."""
        argv = ["docker", "run", "--rm", "--network", "none", "--init", "--label", f"{BASELINE_LABEL}={self.stack.id}"]
        started = time.monotonic()
        subprocess.run([*argv, self.stack.image, *(command or NO_OP)], check=True, capture_output=True, timeout=120)
        return time.monotonic() - started

    def cleanup(self) -> None:
        """Remove the baseline containers so far (outside any timed section)."""
        client = self.client()
        for summary in client.api.containers(all=True, filters={"label": f"{BASELINE_LABEL}={self.stack.id}"}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(summary["Id"], force=True, v=True)

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(Exception):
                    client.close()
            self._clients.clear()


def engine_times(task_execution: dict[str, Any]) -> tuple[float, float]:
    """A finished task execution's start and end (epoch seconds). Gofer records the engine's own times (Docker's
    StartedAt and FinishedAt) when the task finishes; the API gives them in milliseconds."""
    return task_execution["started"] / 1000, task_execution["ended"] / 1000


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """``with timed() as elapsed: ...; elapsed()`` -> seconds (monotonic)."""
    start = time.monotonic()
    end: list[float] = []
    yield lambda: (end[0] if end else time.monotonic()) - start
    end.append(time.monotonic())


def main_guard(run: Callable[[], None]) -> None:
    """Run a benchmark's main so that Ctrl-C, SIGINT or SIGTERM still clean up (the Stack's context manager does).

    SIGINT is re-armed because a shell without job control starts background commands with SIGINT ignored."""

    def interrupt(signum: int, frame: object) -> None:
        # Once: a second signal (``timeout`` and shells signal the whole process group) must not cut the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        run()
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'SIGINT'}); cleaned up", file=sys.stderr)
        sys.exit(130)
