"""A worker continues with the next step of the same run instead of queueing it (runs/engine/driving.py,
``continue_run``), and every continued step is still taken under its own lease.

Through the inline queue (tests/support/engine.py): what the engine enqueues is visible, so "not queued" is
observable, and the lease a step holds is read back from the database while the step runs.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.engine import advancing, driving
from runs.models import Run, TaskExecution
from tests.support.engine import pipeline_with, sh, tasks_of


def chain(image: str, pipeline_id: str = "chain"):
    return pipeline_with(
        [
            sh("a", image, "echo a"),
            sh("b", image, "echo b", depends_on={"a": "Success"}),
            sh("c", image, "echo c", depends_on={"b": "Success"}),
        ],
        pipeline_id=pipeline_id,
    )


def record_starts(monkeypatch) -> list[tuple[str, str, str]]:
    """Each container start as (task, the lease the starting step holds, the lease owner in the database then)."""
    starts: list[tuple[str, str, str]] = []
    real_start = driving._start

    def start(te, lease):
        owner = TaskExecution.objects.values_list("lease_owner", flat=True).get(pk=te.pk)
        starts.append((te.task_slug, lease.owner, owner))
        return real_start(te, lease)

    monkeypatch.setattr(driving, "_start", start)
    return starts


def test_a_chain_is_driven_link_after_link_without_queueing_each_link_under_its_lease(engine, monkeypatch):
    starts = record_starts(monkeypatch)
    run = runs.start_run(SYSTEM_PRINCIPAL, chain(engine.image), {})
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
    assert Run.objects.get(pk=run.pk).status == "successful"
    assert [task for task, _, _ in starts] == ["a", "b", "c"]
    for task, held, in_database in starts:
        assert held and held == in_database, f"{task} was started without holding its lease"
    assert len({held for _, held, _ in starts}) == 3  # one lease per task execution, each claimed on its own
    # The only message was the run's first advance: no drive_task_execution was queued for any link.
    assert [func for func, _ in engine.executed] == ["runs.tasks.advance_run"]
    assert all(te.status == "successful" for te in tasks_of(run).values())


def test_a_continuation_leaves_a_task_another_worker_holds_alone_and_the_reconciler_drives_it(engine, monkeypatch):
    starts = record_starts(monkeypatch)
    real_advance = advancing.advance_run
    taken: list[int] = []

    def advance_then_lose_the_race(run_pk, *, keep_one=False):
        kept = real_advance(run_pk, keep_one=keep_one)
        if kept is not None and not taken:
            # Between our advance and our claim, another worker takes the task execution we were about to drive.
            TaskExecution.objects.filter(pk=kept).update(
                lease_owner="another-worker", lease_expires=timezone.now() + dt.timedelta(seconds=60)
            )
            taken.append(kept)
        return kept

    monkeypatch.setattr(advancing, "advance_run", advance_then_lose_the_race)
    pipeline = pipeline_with([sh("only", engine.image, "echo only")], pipeline_id="race")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain()  # everything queued runs; nothing more can happen while the other worker holds the lease
    te = TaskExecution.objects.get(pk=taken[0])
    assert starts == []  # our worker never touched it
    assert (te.state, te.lease_owner) == ("processing", "another-worker")

    # The other worker dies: its lease lapses, and the reconciler re-drives the task execution.
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=timezone.now() - dt.timedelta(seconds=1))
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60, reconcile_every=0.5)
    assert Run.objects.get(pk=run.pk).status == "successful"
    assert [task for task, _, _ in starts] == ["only"]


def test_siblings_started_from_the_queue_end_inside_their_first_round_with_one_message_each(engine, monkeypatch):
    # Long enough a first round that "it exited inside it" does not depend on the machine's speed.
    monkeypatch.setattr(driving, "QUEUED_FIRST_ROUND_SECONDS", 30)
    pipeline = pipeline_with([sh(name, engine.image, f"echo {name}") for name in "abc"], pipeline_id="fan")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
    assert Run.objects.get(pk=run.pk).status == "successful"
    drives = [args for func, args in engine.executed if func == "runs.tasks.drive_task_execution"]
    # Three ready at once: each queued (idle workers start them side by side), and none handed back afterwards.
    assert sorted(drives) == sorted((te.pk,) for te in tasks_of(run).values())


def test_a_long_task_started_from_the_queue_hands_its_worker_back_after_the_first_round(engine, monkeypatch):
    monkeypatch.setattr(driving, "QUEUED_FIRST_ROUND_SECONDS", 0.2)
    pipeline = pipeline_with(
        [sh("long", engine.image, "sleep 20"), sh("short", engine.image, "true")], pipeline_id="mixed"
    )
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    def handed_back() -> bool:
        long_te = TaskExecution.objects.filter(run=run, task_slug="long").first()
        return long_te is not None and sum(1 for _, args in engine.executed if args == (long_te.pk,)) >= 2

    engine.drain(until=handed_back, timeout=60)
    # The long task's first message ended while it still ran: its worker was free for other work.
    assert TaskExecution.objects.get(run=run, task_slug="long").state == "running"
    runs.cancel_run(SYSTEM_PRINCIPAL, Run.objects.get(pk=run.pk))
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)
