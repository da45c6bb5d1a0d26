"""Gofer settings: one module, driven by environment variables.

With no environment set, Gofer runs embedded: SQLite in ``$GOFER_HOME`` (default ``./.gofer``), the django-q2 ORM
broker and an in-process Channels layer, so a fresh clone needs no services. Production switches parts on with
``GOFER_DATABASE_URL`` (PostgreSQL) and ``GOFER_REDIS_URL`` (broker and Channels layer). Every variable is listed in
docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """The value of ``name``; ``NAME_FILE`` (a path, as Docker secrets use) wins over ``NAME``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points at {file_path!r}, which cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = env(name, "")
    if raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {raw!r}")


def envint(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Where Gofer keeps its files ----------------------------------------------------------------------------------
# Everything Gofer writes is its owner's only: directories 0700, files 0600 (docs/security.md, "The server").
GOFER_HOME = Path(env("GOFER_HOME", str(BASE_DIR / ".gofer"))).resolve()
if not GOFER_HOME.exists():
    GOFER_HOME.mkdir(parents=True, exist_ok=True)
    GOFER_HOME.chmod(0o700)


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing, or take group and others' access away if it has any."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _secret_key() -> str:
    """The Django secret key: from the environment, or generated once and kept (mode 0600) in ``$GOFER_HOME``."""
    configured = env("GOFER_SECRET_KEY")
    if configured:
        return configured
    key_file = GOFER_HOME / "secret_key"
    if key_file.exists():
        _private_file(key_file)
    else:
        # O_EXCL: two processes starting together (server and worker) must not write two different keys.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Keys for secrets and stored credentials (kernel/encryption.py). Empty: a key generated once into $GOFER_HOME.
GOFER_ENCRYPTION_KEY = env("GOFER_ENCRYPTION_KEY")
DEBUG = envbool("GOFER_DEBUG", False)

GOFER_BIND = env("GOFER_BIND", "127.0.0.1:8080")
_bind_host = GOFER_BIND.rsplit(":", 1)[0] or "127.0.0.1"
ALLOWED_HOSTS = envlist("GOFER_ALLOWED_HOSTS", ",".join(sorted({"127.0.0.1", "localhost", _bind_host})))
CSRF_TRUSTED_ORIGINS = envlist("GOFER_CSRF_TRUSTED_ORIGINS")
# The URL task containers use to call back into Gofer (GOFER_API_BASE_URL inside a task). Operator-set, because only
# the operator knows how containers reach this server.
# HTTPS (docs/security.md, "The server"): `make run` (manage.py serve) serves TLS when both are set; `manage.py
# dev_certificate` makes a local pair.
GOFER_TLS_CERT = env("GOFER_TLS_CERT")
GOFER_TLS_KEY = env("GOFER_TLS_KEY")
if bool(GOFER_TLS_CERT) != bool(GOFER_TLS_KEY):
    raise ImproperlyConfigured("GOFER_TLS_CERT and GOFER_TLS_KEY go together: set both (HTTPS) or neither (HTTP)")
GOFER_API_BASE_URL = env("GOFER_API_BASE_URL", f"{'https' if GOFER_TLS_CERT else 'http'}://{GOFER_BIND}")

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("GOFER_SECURE_COOKIES", bool(GOFER_TLS_CERT))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if envbool("GOFER_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- The server: proxies, slow and huge requests, streams (docs/security.md, "The server") ------------------------
# Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs); none by default: the TCP peer is the client.
GOFER_TRUSTED_PROXIES = envlist("GOFER_TRUSTED_PROXIES")
for _proxy in GOFER_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"GOFER_TRUSTED_PROXIES: {_proxy!r} is not an address or a CIDR") from _exc
# A request's line and headers must arrive within this many seconds of the connection (on a kept-alive connection,
# of the request's first byte); its body within GOFER_HTTP_BODY_TIMEOUT plus one second per GOFER_HTTP_BODY_MIN_RATE
# bytes received.
GOFER_HTTP_HEADER_TIMEOUT = envint("GOFER_HTTP_HEADER_TIMEOUT", 15, minimum=1)
GOFER_HTTP_BODY_TIMEOUT = envint("GOFER_HTTP_BODY_TIMEOUT", 30, minimum=1)
GOFER_HTTP_BODY_MIN_RATE = envint("GOFER_HTTP_BODY_MIN_RATE", 64 * 1024, minimum=1)
# Open connections (HTTP and websockets) from one client address; trusted proxies are not counted. 0: no cap.
GOFER_MAX_CONNECTIONS_PER_CLIENT = envint("GOFER_MAX_CONNECTIONS_PER_CLIENT", 64, minimum=0)
# Open websocket streams (events, logs, attach) per token (anonymous callers: per client address). 0: no cap.
GOFER_MAX_STREAMS_PER_TOKEN = envint("GOFER_MAX_STREAMS_PER_TOKEN", 32, minimum=0)
# An open stream re-checks its token and roles this often (and at once when they are revoked in this process, or
# in any process with Redis).
GOFER_STREAM_RECHECK_SECONDS = envint("GOFER_STREAM_RECHECK_SECONDS", 30, minimum=1)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    # Gofer's own apps. Each owns one concept; see docs/architecture.md.
    "kernel",
    "telemetry",
    "console",
    "access",
    "events",
    "pipelines",
    "runs",
    "triggers",
    "notifiers",
    "secretstore",
    "objectstore",
    "sandbox",
]

MIDDLEWARE = [
    # Requests on the external listener (GOFER_EXTERNAL_BIND) see only /api/external/ (gofer_site/listeners.py).
    "gofer_site.listeners.ExternalListenerMiddleware",
    "kernel.api.middleware.ClientAddressMiddleware",
    "kernel.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gofer_site.urls"
WSGI_APPLICATION = "gofer_site.wsgi.application"
ASGI_APPLICATION = "gofer_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------------------
DATABASE_URL = env("GOFER_DATABASE_URL")
# PostgreSQL connections of the server process are pooled (Django's psycopg pool): under ASGI each request's
# synchronous code runs in a new thread, and per-thread persistent connections (conn_max_age) were never reused there
# (a new session per request, docs/performance.md). gofer_site/asgi.py marks the server process before Django starts.
# The workers keep per-thread persistent connections: django-q2 forks them after Django starts, and a pool (its
# connections and its threads) opened before a fork must not be shared by the children. 0 turns the pool off.
GOFER_DATABASE_POOL_SIZE = envint("GOFER_DATABASE_POOL_SIZE", 20, minimum=0, maximum=1000)


def pooled(database: dict) -> dict:
    """``database`` with Django's psycopg pool when this is the server process, the database PostgreSQL and the
    pool size above 0; otherwise unchanged. (tests/settings.py applies it to the test database too.)"""
    if (
        os.environ.get("GOFER_SERVER_PROCESS") != "1"
        or "postgresql" not in database.get("ENGINE", "")
        or not GOFER_DATABASE_POOL_SIZE
    ):
        return database
    options = {**database.get("OPTIONS", {}), "pool": {"min_size": 2, "max_size": GOFER_DATABASE_POOL_SIZE}}
    # The pool keeps and checks its connections itself; Django refuses persistent connections beside it.
    return {**database, "OPTIONS": options, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False}


if DATABASE_URL:
    DATABASES = {"default": pooled(dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True))}
else:
    # SQLite creates the -wal and -shm files with the database file's mode.
    _private_file(GOFER_HOME / "gofer.sqlite3")
    for _suffix in ("-wal", "-shm"):
        if (GOFER_HOME / f"gofer.sqlite3{_suffix}").exists():
            _private_file(GOFER_HOME / f"gofer.sqlite3{_suffix}")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": GOFER_HOME / "gofer.sqlite3",
            "OPTIONS": {
                # The server and the workers write from separate processes. IMMEDIATE takes the write lock at BEGIN, so
                # two writers queue on the busy timeout instead of failing with "database is locked" on lock upgrade;
                # WAL lets readers run beside the writer.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: django-q2 broker and Channels layer -------------------------------------------------------------------
REDIS_URL = env("GOFER_REDIS_URL")

# A worker step (starting containers, watching one task) can legitimately last as long as the longest task timeout,
# 8 hours. django-q2 requires timeout < retry; crash recovery does not wait for django-q2's retry, it is done by
# Gofer's own reconciler through leases (docs/architecture.md), so a long retry costs nothing.
GOFER_MAX_TASK_TIMEOUT = 8 * 3600
GOFER_WORKERS = envint("GOFER_WORKERS", 8, minimum=1, maximum=512)
Q_CLUSTER = {
    # The queue's name; two installations sharing one Redis need different names.
    "name": env("GOFER_QUEUE_NAME", "gofer"),
    "workers": GOFER_WORKERS,
    "recycle": 500,
    "timeout": GOFER_MAX_TASK_TIMEOUT + 600,
    "retry": GOFER_MAX_TASK_TIMEOUT + 1200,
    # A step that died is re-driven by the reconciler, never replayed blindly by the queue.
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    # Gofer never reads django-q2's result rows (runs and task executions are the record); keeping them made every
    # step slower on SQLite (bench/throughput.py: 3.2 -> 2.0 tasks/s with 1,000 kept). Failures are still kept.
    "save_limit": -1,
    "label": "Task queue",
    "poll": 0.2,
    # The cluster's guard checks its processes (and saves its status) this often: a worker process that died is
    # replaced within it. django-q2's 0.5 s was a third of an idle cluster's CPU (bench/idle.py); a lost worker
    # process loses no run (the reconciler re-drives its step), so 2 s costs nothing but that delay.
    "guard_cycle": 2,
    # django-q2 logs every task at INFO; Gofer's own timeline and events say what happened.
    "log_level": env("GOFER_QUEUE_LOG_LEVEL", "WARNING").upper(),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}},
    }
    # Shared by every server process: the per-token stream cap (kernel/api/streams.py) and rate limits hold across
    # them. Without Redis, the database (below).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": Q_CLUSTER["name"],
        }
    }
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker woken by a local bell when work is queued (runs/broker.py): no fast poll when idle, no poll
    # delay per hand-off. ``poll`` becomes the fallback read that catches a lost wake-up.
    Q_CLUSTER["broker_class"] = "runs.broker.WakeableORM"
    Q_CLUSTER["poll"] = envint("GOFER_QUEUE_POLL_SECONDS", 5, minimum=1, maximum=60)
    # In-process only: websocket consumers also poll the database and log files, so a worker in another process
    # still reaches every client (docs/architecture.md, "Live streams").
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # A table in the database (created by a migration), so that rate limits and stream caps hold across server
    # processes without Redis; kernel/cache.py makes its counters atomic.
    # Past MAX_ENTRIES only expired rows are deleted; a table full of live counters refuses new ones (kernel/cache.py).
    CACHES = {
        "default": {
            "BACKEND": "kernel.cache.DatabaseCache",
            "LOCATION": "gofer_cache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        },
        # django-q2's cluster status, saved twice a second by each cluster: in the database cache that was ten SQL
        # statements a second with nothing to do (bench/idle.py). Gofer never reads it; only django-q2's own
        # qinfo/qmonitor commands would, from another process, and they then see no cluster.
        "queue-status": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "queue-status"},
    }
    Q_CLUSTER["cache"] = "queue-status"

# --- Auth, i18n, static -------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = GOFER_HOME / "static"

# --- The REST API ---------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["access.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "kernel.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gofer",
    "DESCRIPTION": "Gofer's REST API: the paths and shapes of Gofer v0, extended in the same style.",
    "VERSION": "0.9.1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/ serves Redoc from this server's static files (drf-spectacular-sidecar), never from a CDN.
    "REDOC_DIST": "SIDECAR",
}
# Request bodies above this are refused (413) before they are parsed. Object uploads stream and have their own limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("GOFER_MAX_REQUEST_BYTES", 8 * 1024 * 1024, minimum=1024)

# --- Gofer behaviour (see docs/configuration.md) -------------------------------------------------------------------
GOFER_SEMVER = "0.9.1"
GOFER_COMMIT = env("GOFER_COMMIT", "")
# Parallelism: a pipeline's 0 means this default, never "unlimited".
GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT = envint("GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT", 20, minimum=1)
GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = envint("GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT", 200, minimum=1)
GOFER_MAX_PARALLELISM = envint("GOFER_MAX_PARALLELISM", 100, minimum=1)
GOFER_IGNORE_PIPELINE_RUN_EVENTS = envbool("GOFER_IGNORE_PIPELINE_RUN_EVENTS", False)
GOFER_EVENT_RETENTION_SECONDS = envint("GOFER_EVENT_RETENTION_SECONDS", 15_768_000, minimum=60)
GOFER_TASK_LOG_RETENTION_RUNS = envint("GOFER_TASK_LOG_RETENTION_RUNS", 50, minimum=1)
GOFER_TASK_STOP_TIMEOUT = envint("GOFER_TASK_STOP_TIMEOUT", 300, minimum=0)
GOFER_GLOBAL_RUN_TIMEOUT = envint("GOFER_GLOBAL_RUN_TIMEOUT", 24 * 3600, minimum=60)
# Variable names a run's own variables may not set (shell-style patterns, matched on the upper-cased name): a run
# must not replace the tasks' PATH or the GOFER_* variables Gofer injects (issue 8). "" protects nothing.
GOFER_PROTECTED_VARIABLES = envlist("GOFER_PROTECTED_VARIABLES", "PATH,GOFER_*")
# The public sandbox (docs/sandbox.md): visitors sign up for a namespace of their own (POST /api/sandbox), task
# containers are locked down whatever the GOFER_TASK_* settings say, and the quotas below default to strict values.
GOFER_SANDBOX = envbool("GOFER_SANDBOX", False)
# Anonymous read of the default namespace (Gofer's web UI uses it). Off by default in sandbox mode.
GOFER_ALLOW_ANONYMOUS = envbool("GOFER_ALLOW_ANONYMOUS", not GOFER_SANDBOX)


def envquota(name: str, sandbox_default: int) -> int | None:
    """A quota's default for new namespaces: "" (the default outside sandbox mode) is unlimited."""
    raw = env(name, "" if not GOFER_SANDBOX else str(sandbox_default)).strip()
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a non-negative integer, or empty for no limit: {raw!r}") from exc
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative integer, or empty for no limit, not {value}")
    return value


# Quotas a new namespace gets (pipelines/quotas.py, docs/quotas.md); admins change them per namespace in the admin or
# with PUT /api/namespaces/{namespace_id}/quotas. Unset: unlimited, except in sandbox mode (the second argument).
GOFER_QUOTA_CONCURRENT_RUNS = envquota("GOFER_QUOTA_CONCURRENT_RUNS", 2)
GOFER_QUOTA_QUEUED_RUNS = envquota("GOFER_QUOTA_QUEUED_RUNS", 10)
GOFER_QUOTA_RUNS_PER_HOUR = envquota("GOFER_QUOTA_RUNS_PER_HOUR", 30)
GOFER_QUOTA_PIPELINES = envquota("GOFER_QUOTA_PIPELINES", 10)
GOFER_QUOTA_TASKS_PER_PIPELINE = envquota("GOFER_QUOTA_TASKS_PER_PIPELINE", 10)
GOFER_QUOTA_TASK_TIMEOUT = envquota("GOFER_QUOTA_TASK_TIMEOUT", 600)  # seconds
GOFER_QUOTA_RUN_DURATION = envquota("GOFER_QUOTA_RUN_DURATION", 1800)  # seconds
GOFER_QUOTA_OBJECT_BYTES = envquota("GOFER_QUOTA_OBJECT_BYTES", 100 * 1024 * 1024)
GOFER_QUOTA_SECRETS = envquota("GOFER_QUOTA_SECRETS", 20)
# A namespace's share of the server's run slots when runs wait for GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT (fair
# scheduling, runs/engine/admission.py): a namespace of weight 2 gets twice the slots of one of weight 1.
GOFER_QUOTA_WEIGHT = envint("GOFER_QUOTA_WEIGHT", 1, minimum=1, maximum=1000)

# Sandbox mode: what a visitor's namespace lives for, and the caps forced on every task container (docs/sandbox.md).
GOFER_SANDBOX_TTL = envint("GOFER_SANDBOX_TTL", 24 * 3600, minimum=60)
GOFER_SANDBOX_MAX_TASK_TIMEOUT = envint("GOFER_SANDBOX_MAX_TASK_TIMEOUT", 600, minimum=10)
GOFER_SANDBOX_TASK_USER = env("GOFER_SANDBOX_TASK_USER", "65534:65534")
if not re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", GOFER_SANDBOX_TASK_USER):
    raise ImproperlyConfigured(
        f"GOFER_SANDBOX_TASK_USER must be uid:gid with neither 0 (sandbox tasks never run as root), "
        f"not {GOFER_SANDBOX_TASK_USER!r}"
    )
try:
    GOFER_SANDBOX_TASK_CPU = Decimal(env("GOFER_SANDBOX_TASK_CPU", "1")).quantize(Decimal("0.001"))  # cores
except InvalidOperation as exc:
    raise ImproperlyConfigured("GOFER_SANDBOX_TASK_CPU must be a number of CPU cores") from exc
if GOFER_SANDBOX_TASK_CPU <= 0:
    raise ImproperlyConfigured("GOFER_SANDBOX_TASK_CPU must be positive")
GOFER_SANDBOX_TASK_MEMORY_MIB = envint("GOFER_SANDBOX_TASK_MEMORY_MIB", 512, minimum=4)
GOFER_SANDBOX_TASK_PIDS_LIMIT = envint("GOFER_SANDBOX_TASK_PIDS_LIMIT", 256, minimum=1)
GOFER_SANDBOX_TMPFS_MIB = envint("GOFER_SANDBOX_TMPFS_MIB", 256, minimum=1)

# --- Rate limits (kernel/api/ratelimits.py, docs/configuration.md) ----------------------------------------------
# django-ratelimit's form, count/period (120/m, 10/15m; periods s, m, h, d); "" turns a limit off. Counted in the
# default cache (Redis, or the database), so they hold across server processes. Generous by default, strict in
# sandbox mode. Over a limit: 429 with Retry-After, in the API's error shape.
_RATE = re.compile(r"[0-9]+/[0-9]*[smhd]")


def _is_set(name: str) -> bool:
    return name in os.environ or f"{name}_FILE" in os.environ


def envrate(name: str, default: str, sandbox_default: str, fallback: str = "") -> str:
    """A rate from ``name`` (or its older name ``fallback``); unset: the default of the mode; set but empty: off."""
    if _is_set(name):
        raw = env(name)
    elif fallback and _is_set(fallback):
        raw = env(fallback)
    else:
        raw = sandbox_default if GOFER_SANDBOX else default
    raw = raw.strip()
    if raw in ("", "0"):
        return ""
    if not _RATE.fullmatch(raw):
        raise ImproperlyConfigured(f"{name} must be count/period (120/m, 10/15m; s, m, h or d), not {raw!r}")
    return raw


# Every API request of one token (all its requests, whatever the route).
GOFER_RATELIMIT_API = envrate("GOFER_RATELIMIT_API", "1200/m", "120/m")
# API requests without a token, per client address (behind GOFER_TRUSTED_PROXIES, the forwarded address).
GOFER_RATELIMIT_ANONYMOUS = envrate("GOFER_RATELIMIT_ANONYMOUS", "300/m", "30/m")
# The external endpoints (webhooks, GitHub, forwarded events) per source address. GOFER_EXTERNAL_RATE_LIMIT, its
# older name, is still read.
GOFER_RATELIMIT_EXTERNAL = envrate("GOFER_RATELIMIT_EXTERNAL", "120/m", "30/m", fallback="GOFER_EXTERNAL_RATE_LIMIT")
# Failed admin logins per client address: at this many, logins from that address are refused until the period ends.
GOFER_RATELIMIT_ADMIN_LOGIN = envrate("GOFER_RATELIMIT_ADMIN_LOGIN", "10/15m", "5/15m")
# Sandbox sign-ups (POST /api/sandbox, sandbox mode only) per client address.
GOFER_RATELIMIT_SANDBOX = envrate("GOFER_RATELIMIT_SANDBOX", "5/h", "5/h")
# --- Telemetry (docs/observability.md) ------------------------------------------------------------------------
# OpenTelemetry reads its own standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME...): traces and
# metrics are exported over OTLP/HTTP when an endpoint is set. This serves metrics at /metrics for Prometheus (a
# token with read on system); off: no metrics unless OTLP is set.
GOFER_METRICS_PROMETHEUS = envbool("GOFER_METRICS_PROMETHEUS", True)
# Each check of /readyz (database, queue, scheduler engine) gets this long before it counts as unreachable.
GOFER_READYZ_TIMEOUT = envint("GOFER_READYZ_TIMEOUT", 3, minimum=1, maximum=60)

# When the cache cannot be reached: let requests through (true, the default) or refuse them (sandbox mode's default).
RATELIMIT_FAIL_OPEN = envbool("GOFER_RATELIMIT_FAIL_OPEN", not GOFER_SANDBOX)

# --- The orchestrator (runs/engine/) -------------------------------------------------------------------------------
# A worker holds a task execution's lease while it drives it and renews it every couple of seconds; when a worker
# dies, the reconciler re-drives the task execution once the lease has lapsed.
GOFER_LEASE_SECONDS = envint("GOFER_LEASE_SECONDS", 30, minimum=2)
# How long one worker step watches one container before handing it back to the queue (so a few workers can watch
# many containers).
GOFER_DRIVE_SLICE_SECONDS = envint("GOFER_DRIVE_SLICE_SECONDS", 10, minimum=1)
# A worker goes on with its run's next step itself (a started container's first watch round, the child a finished
# task makes ready) instead of queueing it (runs/engine/driving.py, continue_run). Off: every step is a queue message.
GOFER_CONTINUE_IN_WORKER = envbool("GOFER_CONTINUE_IN_WORKER", True)
# Attach (an interactive command in a running task) for the whole server; it also needs the `attach` permission and
# the namespace's allow_attach (docs/security.md, "Permissions").
GOFER_ALLOW_ATTACH = envbool("GOFER_ALLOW_ATTACH", True)

# --- Schedulers (container engines) ------------------------------------------------------------------------------
GOFER_SCHEDULER = env("GOFER_SCHEDULER", "docker")
# The in-memory engine (runs/schedulers/memory.py) runs tasks as threads in a shell subset: tests and development only.
GOFER_DEV_SCHEDULERS = envbool("GOFER_DEV_SCHEDULERS", False)
# Docker: the engine comes from DOCKER_HOST (docker.from_env); "" keeps Docker's default network.
GOFER_DOCKER_NETWORK_MODE = env("GOFER_DOCKER_NETWORK_MODE", "")
if GOFER_SANDBOX and GOFER_DOCKER_NETWORK_MODE.strip().lower() == "host":
    raise ImproperlyConfigured("GOFER_DOCKER_NETWORK_MODE=host gives tasks the host's network: refused in sandbox mode")
GOFER_DOCKER_INIT = envbool("GOFER_DOCKER_INIT", True)
GOFER_DOCKER_TIMEOUT = envint("GOFER_DOCKER_TIMEOUT", 300, minimum=5)
# How long a finished task's container is kept (for debugging with docker inspect/logs). 0, the default: removed as
# soon as its logs are stored and its exit recorded, so its environment (secrets) and output leave the host at once.
GOFER_CONTAINER_PRUNE_AFTER = envint("GOFER_CONTAINER_PRUNE_AFTER", 0, minimum=0)


# Image registries tasks may pull from (kernel/outbound.py): those listed here (host, host:port, address or CIDR),
# and, while GOFER_ALLOW_PUBLIC_REGISTRIES is on, any other registry whose every address is public. Loopback,
# private and link-local registries are refused unless listed.
# In sandbox mode only listed registries are allowed (Docker Hub by default), whatever GOFER_ALLOW_PUBLIC_REGISTRIES
# says.
GOFER_ALLOWED_REGISTRIES = envlist("GOFER_ALLOWED_REGISTRIES", "docker.io" if GOFER_SANDBOX else "")
GOFER_ALLOW_PUBLIC_REGISTRIES = envbool("GOFER_ALLOW_PUBLIC_REGISTRIES", not GOFER_SANDBOX)


# Task containers: the defaults that apply when a task sets nothing (docs/security.md, "Task containers").
def envcores(name: str, default: str) -> Decimal | None:
    raw = env(name, default).strip()
    if raw in ("", "0"):
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be a number of CPU cores, not {raw!r}") from exc
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, or 0 for no limit")
    return value


GOFER_TASK_DEFAULT_CPU = envcores("GOFER_TASK_DEFAULT_CPU", "2")  # cores; 0 for no limit
GOFER_TASK_DEFAULT_MEMORY_MIB = envint("GOFER_TASK_DEFAULT_MEMORY_MIB", 4096, minimum=0)  # 0 for no limit
GOFER_TASK_PIDS_LIMIT = envint("GOFER_TASK_PIDS_LIMIT", 4096, minimum=0)  # 0 for no limit
GOFER_TASK_NO_NEW_PRIVILEGES = envbool("GOFER_TASK_NO_NEW_PRIVILEGES", True)
# Capabilities kept after dropping all: what package managers and build tools need to install files and switch
# users; the rest of Docker's default set (NET_RAW, MKNOD, SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE) is dropped.
# "docker-default" keeps the engine's own set.
GOFER_TASK_CAPABILITIES = env(
    "GOFER_TASK_CAPABILITIES", "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,NET_BIND_SERVICE,SETGID,SETUID"
)
GOFER_TASK_USER = env("GOFER_TASK_USER", "")  # e.g. 65534:65534; "" runs as the image's user
GOFER_TASK_READ_ONLY_ROOTFS = envbool("GOFER_TASK_READ_ONLY_ROOTFS", False)
GOFER_TASK_TMPFS_MIB = envint("GOFER_TASK_TMPFS_MIB", 1024, minimum=1)  # /tmp and /workspace when read-only
# The engine's own copy of a task's output (Docker's json-file log), per file and how many files.
GOFER_TASK_ENGINE_LOG_MAX_MIB = envint("GOFER_TASK_ENGINE_LOG_MAX_MIB", 100, minimum=1)
GOFER_TASK_ENGINE_LOG_MAX_FILES = envint("GOFER_TASK_ENGINE_LOG_MAX_FILES", 3, minimum=1)
# Nomad: python-nomad reads the address and token from these.
GOFER_NOMAD_ADDR = env("GOFER_NOMAD_ADDR", "http://127.0.0.1:4646")
GOFER_NOMAD_TOKEN = env("GOFER_NOMAD_TOKEN")
GOFER_NOMAD_NAMESPACE = env("GOFER_NOMAD_NAMESPACE", "default")
GOFER_NOMAD_DATACENTERS = envlist("GOFER_NOMAD_DATACENTERS", "dc1")
GOFER_NOMAD_REGION = env("GOFER_NOMAD_REGION")
GOFER_NOMAD_MHZ_PER_CORE = envint("GOFER_NOMAD_MHZ_PER_CORE", 1000, minimum=1)
GOFER_NOMAD_DEFAULT_MEMORY_MIB = envint("GOFER_NOMAD_DEFAULT_MEMORY_MIB", 1024, minimum=10)
GOFER_NOMAD_TIMEOUT = envint("GOFER_NOMAD_TIMEOUT", 30, minimum=1)
GOFER_NOMAD_CACERT = env("GOFER_NOMAD_CACERT")  # CA bundle for Nomad's TLS certificate; "" = the system CAs

# --- Secret store ---------------------------------------------------------------------------------------------------
# "database": values encrypted at rest in Gofer's own database (GOFER_ENCRYPTION_KEY). "vault": HashiCorp Vault (or
# OpenBao) KV v2 under GOFER_VAULT_PREFIX; the database then keeps only key names and metadata.
GOFER_SECRET_BACKEND = env("GOFER_SECRET_BACKEND", "database")
GOFER_VAULT_ADDR = env("GOFER_VAULT_ADDR", "http://127.0.0.1:8200")
GOFER_VAULT_TOKEN = env("GOFER_VAULT_TOKEN")
GOFER_VAULT_ROLE_ID = env("GOFER_VAULT_ROLE_ID")
GOFER_VAULT_SECRET_ID = env("GOFER_VAULT_SECRET_ID")
GOFER_VAULT_MOUNT = env("GOFER_VAULT_MOUNT", "secret")
GOFER_VAULT_PREFIX = env("GOFER_VAULT_PREFIX", "gofer")
GOFER_VAULT_NAMESPACE = env("GOFER_VAULT_NAMESPACE")
GOFER_VAULT_VERIFY = envbool("GOFER_VAULT_VERIFY", True)
GOFER_VAULT_TIMEOUT = envint("GOFER_VAULT_TIMEOUT", 10, minimum=1)
GOFER_SECRET_MAX_BYTES = envint("GOFER_SECRET_MAX_BYTES", 64 * 1024, minimum=1)
# Values shorter than this are not masked in logs: masking "1" or "yes" would blank unrelated text.
GOFER_SECRET_MASK_MIN_LENGTH = envint("GOFER_SECRET_MASK_MIN_LENGTH", 4, minimum=1)

# --- Object store ---------------------------------------------------------------------------------------------------
GOFER_OBJECT_BACKEND = env("GOFER_OBJECT_BACKEND", "filesystem")
GOFER_OBJECT_DIR = Path(env("GOFER_OBJECT_DIR", str(GOFER_HOME / "objects")))
GOFER_OBJECT_MAX_BYTES = envint("GOFER_OBJECT_MAX_BYTES", 50 * 1024**3, minimum=1)
GOFER_PIPELINE_OBJECT_LIMIT = envint("GOFER_PIPELINE_OBJECT_LIMIT", 50, minimum=1)
GOFER_RUN_OBJECT_EXPIRY = envint("GOFER_RUN_OBJECT_EXPIRY", 2, minimum=1)

# --- Triggers: extensions and subscriptions (docs/triggers.md, docs/extensions.md) --------------------------------
# Built-ins installed once per database, with install settings from GOFER_BUILTIN_<ID>_<KEY> (github is skipped until
# GOFER_BUILTIN_GITHUB_APP_WEBHOOK_SECRET is set). An operator's uninstall sticks.
GOFER_BUILTIN_EXTENSIONS = envlist(
    "GOFER_BUILTIN_EXTENSIONS", "interval,cron,webhook,github,notify-webhook,notify-slack,notify-github,notify-email"
)
# The ticker (one per installation, in a worker process) sleeps until something is due; a change made on this host
# rings it awake (kernel/bells.py), and without a ring it looks at everything at least this often (a change made on
# another host, a lost ring): a few statements per period when idle.
GOFER_TRIGGER_TICK_SECONDS = envint("GOFER_TRIGGER_TICK_SECONDS", 30, minimum=1, maximum=300)
# The ticker's lease: held by one worker process, renewed every third of this; a holder that died on the same host
# is replaced at once, one on another host within 1.5 times this. 0: no lease, every worker process ticks (the
# firings' unique keys still start each due firing once; costs a few queries per process per tick).
GOFER_TRIGGER_LEASE_SECONDS = envint("GOFER_TRIGGER_LEASE_SECONDS", 90, minimum=0)
# How often a subscription in error is re-checked, to heal by itself.
GOFER_TRIGGER_HEAL_SECONDS = envint("GOFER_TRIGGER_HEAL_SECONDS", 30, minimum=1)
# A firing overdue by more than this fell due while no worker ran: it fires once (interval: after its jitter).
GOFER_TRIGGER_MISSED_GRACE_SECONDS = envint("GOFER_TRIGGER_MISSED_GRACE_SECONDS", 60, minimum=1)
# Firings (and with them the delivery ids that make webhooks idempotent) are kept this long.
GOFER_TRIGGER_FIRING_RETENTION_SECONDS = envint("GOFER_TRIGGER_FIRING_RETENTION_SECONDS", 30 * 24 * 3600, minimum=3600)
# The external endpoints (/api/external/...): body limit (GitHub sends at most 25 MB); their rate limit per source
# address is GOFER_RATELIMIT_EXTERNAL (above; GOFER_EXTERNAL_RATE_LIMIT is its older name).
GOFER_EXTERNAL_MAX_BODY_BYTES = envint("GOFER_EXTERNAL_MAX_BODY_BYTES", 25 * 1024 * 1024, minimum=1024)
# A second listener serving only /api/external/ (Gofer's port 8081), started by `make run` when set; "" = the
# external endpoints are served by the main listener only.
GOFER_EXTERNAL_BIND = env("GOFER_EXTERNAL_BIND", "")
# Third-party extensions: the engine their services run on (default: GOFER_SCHEDULER), the host Gofer reaches them
# on, the Gofer URL they are given (GOFER_EXTENSION_SYSTEM_GOFER_HOST), and their health checks and restarts.
GOFER_EXTENSION_SCHEDULER = env("GOFER_EXTENSION_SCHEDULER", "")
GOFER_EXTENSION_HOST = env("GOFER_EXTENSION_HOST", "127.0.0.1")
GOFER_EXTENSION_GOFER_URL = env("GOFER_EXTENSION_GOFER_URL", GOFER_API_BASE_URL)
GOFER_EXTENSION_HEALTH_SECONDS = envint("GOFER_EXTENSION_HEALTH_SECONDS", 10, minimum=1)
GOFER_EXTENSION_HEALTH_FAILURES = envint("GOFER_EXTENSION_HEALTH_FAILURES", 3, minimum=1)
GOFER_EXTENSION_START_TIMEOUT = envint("GOFER_EXTENSION_START_TIMEOUT", 30, minimum=1)
GOFER_EXTENSION_REQUEST_TIMEOUT = envint("GOFER_EXTENSION_REQUEST_TIMEOUT", 5, minimum=1)
GOFER_EXTENSION_RESTART_BACKOFF_MAX = envint("GOFER_EXTENSION_RESTART_BACKOFF_MAX", 300, minimum=1)
GOFER_EXTENSION_LOG_LINES = envint("GOFER_EXTENSION_LOG_LINES", 5000, minimum=100)

# --- Notifiers (docs/notifiers.md) ---------------------------------------------------------------------------------
# Links in notices point here (the run's API URL); set it to the address people reach Gofer at.
GOFER_PUBLIC_URL = env("GOFER_PUBLIC_URL", GOFER_API_BASE_URL).rstrip("/")
# Delivery: at most this many attempts per notice, waiting base * 2^(attempt-1) seconds (at most max, with jitter;
# a 429's Retry-After is waited at least) between them; each attempt times out after timeout seconds.
GOFER_NOTIFIER_MAX_ATTEMPTS = envint("GOFER_NOTIFIER_MAX_ATTEMPTS", 5, minimum=1, maximum=50)
GOFER_NOTIFIER_RETRY_BASE_SECONDS = envint("GOFER_NOTIFIER_RETRY_BASE_SECONDS", 5, minimum=0)
GOFER_NOTIFIER_RETRY_MAX_SECONDS = envint("GOFER_NOTIFIER_RETRY_MAX_SECONDS", 600, minimum=1)
GOFER_NOTIFIER_TIMEOUT_SECONDS = envint("GOFER_NOTIFIER_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
# A subscription goes to error after this many notices in a row whose delivery failed; it heals on a success.
GOFER_NOTIFIER_ERROR_AFTER = envint("GOFER_NOTIFIER_ERROR_AFTER", 3, minimum=1)
# A worker delivering a notice holds it this long; a notice held by a worker that died is delivered by another.
GOFER_NOTIFIER_CLAIM_SECONDS = envint("GOFER_NOTIFIER_CLAIM_SECONDS", 120, minimum=2)
# The sweep (duration rules, lost evaluations and deliveries) runs this often, in the ticker's worker process.
GOFER_NOTIFIER_SWEEP_SECONDS = envint("GOFER_NOTIFIER_SWEEP_SECONDS", 5, minimum=1)
# A fresh worker re-evaluates the runs that finished this long before it started (in case a crash lost them).
GOFER_NOTIFIER_REEVALUATE_SECONDS = envint("GOFER_NOTIFIER_REEVALUATE_SECONDS", 3600, minimum=60)
# notify-email: the SMTP server (Django's SMTP backend) and the sender.
GOFER_EMAIL_HOST = env("GOFER_EMAIL_HOST", "localhost")
GOFER_EMAIL_PORT = envint("GOFER_EMAIL_PORT", 25, minimum=1, maximum=65535)
GOFER_EMAIL_USER = env("GOFER_EMAIL_USER")
GOFER_EMAIL_PASSWORD = env("GOFER_EMAIL_PASSWORD")
GOFER_EMAIL_USE_TLS = envbool("GOFER_EMAIL_USE_TLS", False)
GOFER_EMAIL_FROM = env("GOFER_EMAIL_FROM", "gofer@localhost")

# --- Logs -----------------------------------------------------------------------------------------------------------
GOFER_LOG_DIR = Path(env("GOFER_LOG_DIR", str(GOFER_HOME / "logs")))
# A longer log line is stored cut at this many bytes, with a note saying how much was left out: a task printing one
# 100 MB line must cost the workers no more than a normal one.
GOFER_LOG_MAX_LINE_BYTES = envint("GOFER_LOG_MAX_LINE_BYTES", 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("GOFER_LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django-q": {"level": env("GOFER_QUEUE_LOG_LEVEL", "WARNING").upper()},
        # Whatever GOFER_LOG_LEVEL says: at DEBUG urllib3 logs each request's path, and a Slack webhook's path is
        # its credential (so can a query string be); requests logs through urllib3 and its own logger.
        "urllib3": {"level": "WARNING"},
        "requests": {"level": "WARNING"},
    },
}
