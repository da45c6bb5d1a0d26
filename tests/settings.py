"""Test settings: the real settings, pointed at a throw-away $GOFER_HOME and the chosen database.

``GOFER_TEST_DB=postgres`` (set by ``make test`` under ``CI=true``) runs the suite on the real PostgreSQL at
127.0.0.1:5432; otherwise SQLite. The SQLite test database is a file, not memory, so that the worker and server
processes some tests start can open it too.
"""

import os
import tempfile
from pathlib import Path

_home = Path(os.environ.get("GOFER_TEST_HOME") or tempfile.mkdtemp(prefix="gofer-test-"))
os.environ["GOFER_HOME"] = str(_home)
os.environ.setdefault("GOFER_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# One queue per test session (children inherit it), so two suites sharing a Redis never take each other's work.
# Under pytest-xdist each worker process gets its own: they inherit the controller's environment, and a worker
# process started by one xdist worker's test must not take the runs of another's (they are in another database).
_queue = os.environ.get("GOFER_QUEUE_NAME") or f"gofer-test-{os.getpid()}"
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker and not _queue.endswith(f"-{_xdist_worker}"):
    _queue = f"{_queue}-{_xdist_worker}"
os.environ["GOFER_QUEUE_NAME"] = _queue
# GOFER_TEST_REDIS=1 (make test under CI=true): the django-q2 broker and the Channels layer use the real Redis.
if os.environ.get("GOFER_TEST_REDIS") == "1":
    os.environ.setdefault("GOFER_REDIS_URL", "redis://127.0.0.1:6379/0")

# The API-wide rate limits count every request of the suite from 127.0.0.1: off, except in the tests of them
# (tests/kernel/test_ratelimits.py), which set them. Children inherit this unless a test passes its own.
for _limit in ("GOFER_RATELIMIT_API", "GOFER_RATELIMIT_ANONYMOUS", "GOFER_RATELIMIT_ADMIN_LOGIN"):
    os.environ.setdefault(_limit, "")

from gofer_site.settings import *  # noqa: E402,F403
from gofer_site.settings import DATABASES, GOFER_HOME  # noqa: E402

if os.environ.get("GOFER_TEST_DB", "sqlite") == "postgres":
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "gofer",
        "USER": "postgres",
        "HOST": os.environ.get("GOFER_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("GOFER_TEST_PG_PORT", "5432"),
        "TEST": {"NAME": f"test_gofer_{os.getpid()}"},
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": str(GOFER_HOME / "test.sqlite3")}

# A server or worker process started by a test (tests/support/processes.py) opens the test database directly.
if os.environ.get("GOFER_TEST_SUBPROCESS_DB"):
    DATABASES["default"]["NAME"] = os.environ["GOFER_TEST_SUBPROCESS_DB"]

# A server process a test starts pools its PostgreSQL connections as a real one does (gofer_site/asgi.py).
from gofer_site.settings import pooled  # noqa: E402

DATABASES["default"] = pooled(DATABASES["default"])

if os.environ.get("GOFER_TEST_REDIS") == "1":
    from gofer_site.settings import CHANNEL_LAYERS, Q_CLUSTER  # noqa: E402

    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = Q_CLUSTER["name"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The memory scheduler (runs/schedulers/memory.py), which get_scheduler refuses unless this is set.
GOFER_DEV_SCHEDULERS = True
