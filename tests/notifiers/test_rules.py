"""Rules over recorded run histories: each notice once, at the right run, with the edge cases of the issue (a
window not yet full, cancelled runs, a streak that ends and starts again, recovery turned off)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from notifiers import services as notifiers
from notifiers.models import Notice
from runs.models import Run
from tests.notifiers.conftest import DELIVER, SUBSCRIPTIONS, finished_run, history, notices, subscribe
from triggers import services as triggers

F, S, C = "failed", "successful", "cancelled"
URL = "http://127.0.0.1:9/hook"


def test_run_finished_notifies_every_completed_run_and_run_failed_only_the_failed(pipeline, webhook_kind):
    every = subscribe(pipeline, "notify-webhook", "every", when="run_finished", url=URL)
    failures = subscribe(pipeline, "notify-webhook", "failures", when="run_failed", url=URL)
    history(pipeline, S, F, C, F)
    assert notices(every) == [(1, "triggered"), (2, "triggered"), (3, "triggered"), (4, "triggered")]
    assert notices(failures) == [(2, "triggered"), (4, "triggered")]


def test_failed_in_a_row_fires_once_at_the_count_recovers_and_fires_again_on_a_new_streak(pipeline, webhook_kind):
    streak = subscribe(pipeline, "notify-webhook", "streak", when="failed_in_a_row", count="3", url=URL)
    history(pipeline, F, F)
    assert notices(streak) == []
    history(pipeline, F, F, F)  # runs 3, 4, 5: the streak reaches 3 at run 3 and goes on
    assert notices(streak) == [(3, "triggered")]
    history(pipeline, S, S)  # run 6 ends the streak; run 7 is just another success
    assert notices(streak) == [(3, "triggered"), (6, "recovered")]
    history(pipeline, F, F, S, F, F, F)  # a short streak (8, 9) then a new one reaching 3 at run 13
    assert notices(streak) == [(3, "triggered"), (6, "recovered"), (13, "triggered")]


def test_cancelled_runs_neither_break_nor_extend_a_failure_streak(pipeline, webhook_kind):
    streak = subscribe(pipeline, "notify-webhook", "streak", when="failed_in_a_row", count="3", url=URL)
    history(pipeline, F, C, F, C, C)
    assert notices(streak) == []  # two failures, cancels in between do not make a third
    history(pipeline, F)  # run 6: the third failure, the cancels did not break the streak
    assert notices(streak) == [(6, "triggered")]
    history(pipeline, C)  # a cancel does not end it either
    assert notices(streak) == [(6, "triggered")]
    history(pipeline, S)
    assert notices(streak) == [(6, "triggered"), (8, "recovered")]


def test_recovery_false_sends_no_recovered_notice_but_a_new_streak_fires_again(pipeline, webhook_kind, queued):
    streak = subscribe(
        pipeline, "notify-webhook", "quiet", when="failed_in_a_row", count="2", recovery="false", url=URL
    )
    history(pipeline, F, F, S, F, F)
    recorded = list(Notice.objects.filter(subscription=streak).order_by("id"))
    assert [(n.run.number, n.kind, n.state) for n in recorded] == [
        (2, "triggered", "pending"),
        (3, "recovered", "silenced"),
        (5, "triggered", "pending"),
    ]
    # Only the two triggered notices were handed to the workers.
    assert sorted(args[0] for func, args in queued if func == DELIVER) == [recorded[0].pk, recorded[2].pk]


def test_failure_rate_waits_for_a_full_window_fires_once_above_and_recovers_at_or_below(pipeline, webhook_kind):
    rate = subscribe(pipeline, "notify-webhook", "rate", when="failure_rate", threshold="50", window="4", url=URL)
    history(pipeline, F, F, F)  # 100 % but only 3 runs: the window is not full
    assert notices(rate) == []
    history(pipeline, S)  # run 4: 3 of 4 = 75 % > 50
    assert notices(rate) == [(4, "triggered")]
    history(pipeline, F)  # run 5: still 75 %, still above: nothing new
    assert notices(rate) == [(4, "triggered")]
    history(pipeline, S, S)  # run 6: 2 of 4 = 50 %, at the threshold: recovered; run 7: 25 %
    assert notices(rate) == [(4, "triggered"), (6, "recovered")]
    # Cancels do not count in the window: at run 11 it is runs 6, 7, 10, 11 (S S F F: 50 %), at 12 runs 7, 10,
    # 11, 12 (S F F F: 75 %).
    history(pipeline, C, C, F, F)
    assert notices(rate) == [(4, "triggered"), (6, "recovered")]
    history(pipeline, F)
    assert notices(rate) == [(4, "triggered"), (6, "recovered"), (12, "triggered")]


def test_task_rules_notify_when_that_task_completes_that_way(pipeline, webhook_kind):
    failed = subscribe(pipeline, "notify-webhook", "compile-failed", when="task_failed", task="compile", url=URL)
    passed = subscribe(pipeline, "notify-webhook", "test-passed", when="task_succeeded", task="test", url=URL)
    finished_run(pipeline, F, tasks={"compile": "failed", "test": "skipped"})
    finished_run(pipeline, S, tasks={"compile": "successful", "test": "successful"})
    assert notices(failed) == [(1, "triggered")]
    assert notices(passed) == [(2, "triggered")]
    assert Notice.objects.get(subscription=failed).task_slug == "compile"


def test_duration_exceeded_notifies_a_running_run_once(pipeline, webhook_kind):
    slow = subscribe(pipeline, "notify-webhook", "slow", when="duration_exceeded", duration="10m", url=URL)
    config = pipeline.configs.get(state="live")
    now = timezone.now()
    common = {"namespace_id": "team-a", "pipeline": pipeline, "config": config, "config_version": config.version}
    long_one = Run.objects.create(number=1, state="running", started=now - dt.timedelta(minutes=11), **common)
    Run.objects.create(number=2, state="running", started=now - dt.timedelta(minutes=5), **common)
    assert [n.run.number for n in notifiers.check_durations(now)] == [1]
    assert notifiers.check_durations(now) == []  # once per run
    assert [n.run.number for n in notifiers.check_durations(now + dt.timedelta(minutes=6))] == [2]
    assert notices(slow) == [(long_one.number, "triggered"), (2, "triggered")]


def test_deciding_the_same_run_again_records_nothing_more(pipeline, webhook_kind):
    every = subscribe(pipeline, "notify-webhook", "every", when="run_finished", url=URL)
    streak = subscribe(pipeline, "notify-webhook", "streak", when="failed_in_a_row", count="2", url=URL)
    runs = history(pipeline, F, F, S)
    # A second worker, or the sweep after a restart, decides every run again.
    for run in runs:
        notifiers.evaluate_run(run.pk)
    notifiers.reevaluate_since(timezone.now() - dt.timedelta(days=2))
    assert notifiers.reevaluate_since(timezone.now() - dt.timedelta(days=2)) == 0
    assert notices(every) == [(1, "triggered"), (2, "triggered"), (3, "triggered")]
    assert notices(streak) == [(2, "triggered"), (3, "recovered")]


def test_a_disabled_subscription_records_no_notice(pipeline, webhook_kind):
    every = subscribe(pipeline, "notify-webhook", "every", when="run_finished", url=URL)
    triggers.set_subscription_status(every, "disabled")
    history(pipeline, F)
    assert notices(every) == []


def _refused(alice, field: str, **settings: str) -> str:
    body = {"extension_id": "notify-webhook", "subscription_id": "bad", "settings": {"url": URL, **settings}}
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400, response.json()
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == [field], response.json()
    return response.json()["message"]


def test_bad_rules_are_400s_naming_the_setting(pipeline, webhook_kind, alice):
    assert "is not a rule" in _refused(alice, "settings.when", when="sometimes")
    _refused(alice, "settings.when")  # missing
    _refused(alice, "settings.count", when="failed_in_a_row", count="zero")
    _refused(alice, "settings.count", when="failed_in_a_row", count="0")
    _refused(alice, "settings.threshold", when="failure_rate")
    _refused(alice, "settings.threshold", when="failure_rate", threshold="150")
    _refused(alice, "settings.window", when="failure_rate", threshold="10", window="-3")
    _refused(alice, "settings.duration", when="duration_exceeded", duration="soon")
    _refused(alice, "settings.duration", when="duration_exceeded")
    # Too large for a timedelta: a 400 naming the setting, not a 500.
    assert "longer than ten years" in _refused(
        alice, "settings.duration", when="duration_exceeded", duration="99999999999h"
    )
    _refused(alice, "settings.recovery", when="failed_in_a_row", recovery="maybe")
    _refused(alice, "settings.task", when="task_failed")
    assert "has no task 'deploy'" in _refused(alice, "settings.task", when="task_failed", task="deploy")
    # A setting of another rule is a typo, not something to ignore.
    _refused(alice, "settings.count", when="run_failed", count="3")
    assert not Notice.objects.exists()
    assert alice.get(SUBSCRIPTIONS).json()["subscriptions"] == []


def test_runs_that_finished_before_the_subscription_are_not_notified(pipeline, webhook_kind):
    earlier = finished_run(pipeline, F)
    Run.objects.filter(pk=earlier.pk).update(ended=timezone.now() - dt.timedelta(minutes=10))
    every = subscribe(pipeline, "notify-webhook", "every", when="run_finished", url=URL)
    notifiers.reevaluate_since(timezone.now() - dt.timedelta(hours=1))
    assert notices(every) == []
    history(pipeline, F)
    assert notices(every) == [(2, "triggered")]


def test_a_task_completing_on_a_pipeline_without_task_rules_costs_one_query(
    pipeline, webhook_kind, django_assert_num_queries
):
    subscribe(pipeline, "notify-webhook", "runs", when="run_failed", url=URL)  # a run rule only
    run = finished_run(pipeline, "failed", tasks={"compile": "failed"})
    te = run.task_executions.get(task_slug="compile")
    with django_assert_num_queries(1):
        assert notifiers.evaluate_task_execution(te.pk, pipeline.pk) == []
    # The same task under a task rule is decided (the fast path skips only what cannot match).
    subscribe(pipeline, "notify-webhook", "compile-failed", when="task_failed", task="compile", url=URL)
    assert len(notifiers.evaluate_task_execution(te.pk, pipeline.pk)) == 1
