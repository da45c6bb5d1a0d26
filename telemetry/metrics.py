"""Gofer's metrics: the instruments and the one helper per thing measured, for the apps above to call.

=====================================  =========  ==============================================================
name                                   kind       attributes
=====================================  =========  ==============================================================
``gofer.runs.completed``               counter    namespace, status (successful, failed, cancelled)
``gofer.run.admission_wait``           histogram  namespace: seconds from queued to admitted (s)
``gofer.task.duration``                histogram  namespace, status: seconds from container start to exit (s)
``gofer.trigger.firings``              counter    extension, outcome (started, skipped, failed)
``gofer.notifier.deliveries``          counter    kind, outcome (delivered, failed, given_up)
``gofer.runs``                         gauge      state (pending, running): every run now, from the database
``gofer.queue.depth``                  gauge      namespace: runs waiting to be admitted, from the database
``gofer.queue.wait``                   gauge      namespace: age of the oldest waiting run (s), from the database
=====================================  =========  ==============================================================

The gauges are read from the database when collected (registered by the runs app with ``register_gauge``), so every
process reports the same installation-wide values: aggregate them with ``max``. Counters and histograms count in
the process where the thing happened (worker steps in the workers): OTLP exports each process's own.

Every helper returns at its first line when metrics are off (telemetry/otel.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from telemetry import otel

Reading = Iterable[tuple[float, dict[str, str]]]


@dataclass(frozen=True)
class Gauge:
    name: str
    description: str
    unit: str
    read: Callable[[], Reading]


_gauges: dict[str, Gauge] = {}
_instruments: dict[str, Any] = {}


def register_gauge(name: str, description: str, unit: str, read: Callable[[], Reading]) -> None:
    """An observable gauge whose values ``read()`` gives ((value, attributes) pairs) when metrics are collected."""
    _gauges[name] = Gauge(name, description, unit, read)
    _build()


def _observe(gauge: Gauge) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, attributes) for value, attributes in gauge.read()]

    return callback


def _build() -> None:
    """(Re)create the instruments on the current meter provider."""
    _instruments.clear()
    if otel.state.meter_provider is None:
        return
    meter = otel.meter()
    _instruments["runs_completed"] = meter.create_counter("gofer.runs.completed", description="Runs completed")
    _instruments["admission_wait"] = meter.create_histogram(
        "gofer.run.admission_wait", unit="s", description="Seconds from a run's queueing to its admission"
    )
    _instruments["task_duration"] = meter.create_histogram(
        "gofer.task.duration", unit="s", description="Seconds a task's container ran"
    )
    _instruments["trigger_firings"] = meter.create_counter("gofer.trigger.firings", description="Trigger firings")
    _instruments["notifier_deliveries"] = meter.create_counter(
        "gofer.notifier.deliveries", description="Notifier delivery attempts"
    )
    for gauge in _gauges.values():
        meter.create_observable_gauge(
            gauge.name, callbacks=[_observe(gauge)], unit=gauge.unit, description=gauge.description
        )


otel.on_change(_build)


def _add(key: str, value: float, attributes: dict[str, str]) -> None:
    instrument = _instruments.get(key)
    if instrument is not None:
        instrument.add(value, attributes)


def _record(key: str, value: float, attributes: dict[str, str]) -> None:
    instrument = _instruments.get(key)
    if instrument is not None:
        instrument.record(max(0.0, value), attributes)


def run_completed(namespace: str, status: str) -> None:
    _add("runs_completed", 1, {"namespace": namespace, "status": status})


def run_admitted(namespace: str, waited_seconds: float) -> None:
    _record("admission_wait", waited_seconds, {"namespace": namespace})


def task_completed(namespace: str, status: str, seconds: float | None) -> None:
    if seconds is not None:
        _record("task_duration", seconds, {"namespace": namespace, "status": status})


def trigger_fired(extension: str, outcome: str) -> None:
    """One firing of a trigger subscription: ``outcome`` ``started`` (a run), ``skipped`` or ``failed``."""
    _add("trigger_firings", 1, {"extension": extension, "outcome": outcome})


def notifier_delivery(kind: str, outcome: str) -> None:
    """One delivery attempt of a notice (for the notifiers app): ``kind`` the notifier extension
    (``notify-webhook``...), ``outcome`` ``delivered``, ``failed`` (will be retried) or ``given_up``."""
    _add("notifier_deliveries", 1, {"kind": kind, "outcome": outcome})
