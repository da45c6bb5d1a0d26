"""A real pipeline on the memory scheduler, driven by the engine through the worker entry points (the inline queue
of tests/support/engine.py): the engine's completion signals decide the notices and the workers' delivery step
posts them to a receiver on loopback."""

from __future__ import annotations

import pytest

from notifiers.models import Notice
from runs.models import Run
from tests.notifiers.conftest import install, subscribe
from tests.runs.conftest import _memory_engine
from tests.support.engine import pipeline_with, run_to_completion, sh


@pytest.fixture
def memory_engine(transactional_db, settings, monkeypatch):
    with _memory_engine(settings, monkeypatch) as inline:
        yield inline


def test_a_failing_pipeline_reaches_the_receiver(memory_engine, receiver):
    install("notify-webhook", allowed_hosts="127.0.0.1")
    pipeline = pipeline_with(
        [
            sh("build", memory_engine.image, "echo building"),
            sh("test", memory_engine.image, "echo broken >&2; exit 3", depends_on={"build": "Success"}),
        ],
        pipeline_id="e2e",
    )
    subscribe(pipeline, "notify-webhook", "failures", when="run_failed", url=f"{receiver.url}/run", secret="s3cret-key")
    subscribe(pipeline, "notify-webhook", "tests", when="task_failed", task="test", url=f"{receiver.url}/task")
    subscribe(pipeline, "notify-webhook", "streak", when="failed_in_a_row", count="2", url=f"{receiver.url}/streak")

    first = run_to_completion(memory_engine, pipeline)
    assert first.status == "failed"
    memory_engine.drain(until=lambda: Notice.objects.filter(state="delivered").count() == 2, timeout=30)
    by_path = {r.path: r.json() for r in receiver.wait_for(2)}
    assert set(by_path) == {"/run", "/task"}
    assert by_path["/run"]["run_id"] == first.number and by_path["/run"]["failed_tasks"] == ["test"]
    assert by_path["/task"]["task_id"] == "test" and by_path["/task"]["rule"] == "task_failed"

    second = run_to_completion(memory_engine, pipeline)
    memory_engine.drain(until=lambda: Notice.objects.filter(state="delivered").count() == 5, timeout=30)
    streak = [r.json() for r in receiver.wait_for(5) if r.path == "/streak"]
    assert [(n["run_id"], n["notice"]) for n in streak] == [(second.number, "triggered")]
    assert Run.objects.filter(pipeline=pipeline).count() == 2
