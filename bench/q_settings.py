"""Settings for benchmark experiments only: Gofer's own settings plus django-q2 options that have no GOFER_* variable
(``--q-option poll=0.05`` on any benchmark sets ``BENCH_Q_POLL`` for the server and the workers and selects this
module). Without ``--q-option`` the benchmarks use ``gofer_site.settings`` unchanged.
"""

import os

from gofer_site.settings import *  # noqa: F403
from gofer_site.settings import Q_CLUSTER

OPTIONS = {"poll": float, "bulk": int, "save_limit": int, "recycle": int, "broker_class": str}

for _name, _cast in OPTIONS.items():
    _raw = os.environ.get(f"BENCH_Q_{_name.upper()}")
    if _raw == "none" and _name == "broker_class":
        # django-q2's own ORM broker with its 0.2-s poll, as Gofer had before runs/broker.py (the "before" of
        # bench/idle.py); GOFER_QUEUE_POLL_SECONDS is the new broker's fallback, not this poll. --q-option poll wins.
        Q_CLUSTER.pop("broker_class", None)
        Q_CLUSTER["poll"] = float(os.environ.get("BENCH_Q_POLL") or 0.2)
    elif _raw:
        Q_CLUSTER[_name] = _cast(_raw)
