"""The run quotas the engine enforces (pipelines/quotas.py): run_duration cancels a longer run; task_timeout and
sandbox caps are applied when a run is admitted (tests/runs/test_fair_admission.py, tests/sandbox/)."""

from __future__ import annotations

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines import quotas
from pipelines.models import Namespace
from runs import services as runs
from runs.models import Run, TaskExecution
from tests.support.engine import pipeline_with, sh, tasks_of


def test_a_run_longer_than_its_namespaces_run_duration_quota_is_cancelled_with_reason_timeout(engine, settings):
    settings.GOFER_TASK_STOP_TIMEOUT = 1
    pipeline = pipeline_with(
        [sh("slow", engine.image, "sleep 300"), sh("after", engine.image, "true", depends_on={"slow": "Success"})],
        pipeline_id="too-long",
    )
    other = pipeline_with([sh("slow", engine.image, "sleep 3")], pipeline_id="fine", namespace_id="team-b")
    quotas.update_quotas(Namespace.objects.get(pk="team-a"), {"run_duration": 1})
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    unaffected = runs.start_run(SYSTEM_PRINCIPAL, other, {})

    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
    engine.drain(until=lambda: Run.objects.get(pk=unaffected.pk).state == "complete", timeout=90)

    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.status_reason) == ("failed", "timeout")
    assert "namespace team-a's run_duration quota of 1 s" in run.status_description
    assert tasks_of(run)["after"].status_reason == "timeout"
    assert Run.objects.get(pk=unaffected.pk).status == "successful"
    assert TaskExecution.objects.filter(run=unaffected, status="successful").exists()
