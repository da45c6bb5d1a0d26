"""Fair scheduling between namespaces (runs/engine/admission.py): when runs wait for the global limit, free slots
are shared by weight, each namespace's runs start in their own order, and a namespace's concurrent_runs quota keeps
its runs waiting without holding back anyone else's.

The admission tests call the real admission pass on the real database and free slots by completing running runs
directly: what they check is which run gets each slot. The last test runs the whole engine."""

from __future__ import annotations

import pytest

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines import quotas
from pipelines.models import Namespace
from runs import services as runs
from runs.engine import admission
from runs.models import Run
from tests.support import engine as engine_support
from tests.support.engine import pipeline_with, sh


@pytest.fixture
def inline_queue(monkeypatch, db):
    """The engine's messages are kept, not run: these tests drive admission themselves."""
    return engine_support.install(monkeypatch)


def start(pipeline, count: int) -> list[Run]:
    return [runs.start_run(SYSTEM_PRINCIPAL, pipeline, {}) for _ in range(count)]


def running() -> list[Run]:
    return list(Run.objects.filter(state="running").select_related("pipeline").order_by("started", "id"))


def finish(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(state="complete", status="successful")


def label(run: Run) -> str:
    return f"{run.namespace_id}/{run.number}"


def admit_labels() -> list[str]:
    admitted = admission.admit_pending_runs()
    by_pk = {run.pk: run for run in Run.objects.filter(pk__in=admitted).select_related("pipeline")}
    return [label(by_pk[pk]) for pk in admitted]


def test_one_tenants_hundred_queued_runs_do_not_starve_anothers_one(inline_queue, settings):
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 3
    busy = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="busy", namespace_id="tenant-a")
    other = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="other", namespace_id="tenant-b")
    Run.objects.update(state="complete")
    start(busy, 100)
    assert admit_labels() == ["tenant-a/1", "tenant-a/2", "tenant-a/3"]
    (b_run,) = start(other, 1)

    order: list[str] = []
    while Run.objects.filter(state="pending").exists():
        finish(running()[0])  # one slot frees
        order.extend(admit_labels())

    assert order[0] == "tenant-b/1"  # the very next free slot
    a_numbers = [int(item.split("/")[1]) for item in order if item.startswith("tenant-a/")]
    assert a_numbers == list(range(4, 101))  # A's runs still in their own order
    timeline = [entry.message for entry in Run.objects.get(pk=b_run.pk).timeline.all()]
    assert not any(message.startswith("waiting") for message in timeline)


def test_a_namespace_beyond_the_admission_window_is_still_seen(inline_queue, settings, monkeypatch):
    monkeypatch.setattr(admission, "NAMESPACE_WINDOW", 5)
    monkeypatch.setattr(admission, "ADMISSION_WINDOW", 8)
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 1
    busy = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="busy", namespace_id="tenant-a")
    other = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="other", namespace_id="tenant-b")
    start(busy, 20)  # older than B's run, and more than the whole window
    start(other, 1)

    assert admit_labels() == ["tenant-a/1"]
    finish(running()[0])
    assert admit_labels() == ["tenant-b/1"]


def test_weights_share_the_slots_in_proportion(inline_queue, settings):
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 4
    heavy = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="heavy", namespace_id="tenant-a")
    light = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="light", namespace_id="tenant-b")
    quotas.update_quotas(Namespace.objects.get(pk="tenant-a"), {"weight": 3})
    start(light, 10)
    start(heavy, 10)

    first = admit_labels()

    assert sorted(first) == ["tenant-a/1", "tenant-a/2", "tenant-a/3", "tenant-b/1"]
    # Round after round the split stays 3 to 1.
    for _ in range(2):
        for run in running():
            finish(run)
        admit_labels()
    started = {
        ns: Run.objects.filter(namespace_id=ns).exclude(state="pending").count() for ns in ("tenant-a", "tenant-b")
    }
    assert started == {"tenant-a": 9, "tenant-b": 3}


def test_the_concurrent_runs_quota_keeps_a_namespaces_runs_waiting_but_not_the_others(inline_queue, settings):
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 10
    capped = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="capped", namespace_id="tenant-a")
    free = pipeline_with([sh("work", "busybox:latest", "true")], pipeline_id="free", namespace_id="tenant-b")
    quotas.update_quotas(Namespace.objects.get(pk="tenant-a"), {"concurrent_runs": 2})
    a_runs = start(capped, 4)
    start(free, 3)

    admitted = admit_labels()

    assert sorted(admitted) == ["tenant-a/1", "tenant-a/2", "tenant-b/1", "tenant-b/2", "tenant-b/3"]
    waiting = Run.objects.get(pk=a_runs[2].pk)
    assert waiting.state == "pending"
    assert any(
        "namespace tenant-a runs its quota of 2 concurrent runs" in entry.message for entry in waiting.timeline.all()
    )
    finish(Run.objects.get(pk=a_runs[0].pk))
    assert admit_labels() == ["tenant-a/3"]


def test_the_task_timeout_quota_caps_a_runs_tasks_at_admission(inline_queue):
    pipeline = pipeline_with(
        [sh("work", "busybox:latest", "true", timeout=3600)], pipeline_id="long", namespace_id="tenant-a"
    )
    quotas.update_quotas(Namespace.objects.get(pk="tenant-a"), {"task_timeout": 600})  # lowered after registration
    (run,) = start(pipeline, 1)

    admission.admit_pending_runs()

    assert run.task_executions.get().task["timeout"] == 600


def test_fair_share_on_the_engine_starts_the_other_tenants_run_at_the_next_free_slot(engine, settings):
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 1
    busy = pipeline_with([sh("work", engine.image, "true")], pipeline_id="busy", namespace_id="tenant-a")
    other = pipeline_with([sh("work", engine.image, "true")], pipeline_id="other", namespace_id="tenant-b")
    a_runs = start(busy, 5)
    engine.drain(until=lambda: Run.objects.get(pk=a_runs[0].pk).state != "pending")
    ahead = Run.objects.filter(namespace_id="tenant-a").exclude(state="pending").count()  # 1, or 2 on a fast engine
    assert ahead < 5
    (b_run,) = start(other, 1)

    engine.drain(until=lambda: not Run.objects.exclude(state="complete").exists(), timeout=180)

    started = [label(run) for run in Run.objects.select_related("pipeline").order_by("started", "id")]
    assert started[ahead] == "tenant-b/1"  # the next slot that freed after it was queued
    assert [item for item in started if item.startswith("tenant-a/")] == [f"tenant-a/{n}" for n in range(1, 6)]
    assert Run.objects.get(pk=b_run.pk).status == "successful"
