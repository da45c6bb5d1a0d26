"""The operators' console for runs, task executions and timelines: pages, inlines, the cancel actions through the
services, and tenant scoping of staff users."""

from __future__ import annotations

import pytest
from django.utils import timezone

from events.models import Event
from runs.choices import RunState, RunStatus, RunStatusReason, TaskExecutionState
from runs.models import Run, TaskExecution, TimelineEntry
from tests.support.admin import (
    TEAM_A_FULL,
    TEAM_A_READ,
    WRITES_A_READS_B,
    change_url,
    changelist_url,
    messages_of,
    staff_client,
    tenant_data,
)


@pytest.fixture
def data(namespaces):
    return tenant_data()


def results(response) -> list[str]:
    assert response.status_code == 200
    return sorted(str(obj) for obj in response.context["cl"].result_list)


def test_every_runs_page_renders_for_a_superuser(admin_client, data):
    team_a = data["team-a"]
    pages = {
        changelist_url(Run): "team-a/build run 1",
        change_url(team_a.run): "team-a/build run 1",
        changelist_url(TaskExecution): "team-a/build run 1 task compile",
        change_url(team_a.te): "team-a/build run 1 task compile",
        changelist_url(TimelineEntry): "queued by gofer",
        change_url(team_a.timeline): "queued by gofer",
    }
    for url, expected in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url


def test_a_run_page_shows_its_task_executions_and_timeline(admin_client, data):
    team_a = data["team-a"]
    page = admin_client.get(change_url(team_a.run)).content.decode()
    assert f'href="{change_url(team_a.te)}"' in page
    assert "Waiting (for parents)" in page
    assert "queued by gofer (system) on config version 1" in page
    # Read-only inlines: no inputs for the rows.
    assert 'name="task_executions-0-state"' not in page
    assert 'name="timeline-0-message"' not in page


def test_the_run_token_secret_is_never_shown(admin_client, data):
    run = data["team-a"].run
    Run.objects.filter(pk=run.pk).update(token_secret="plaintext-run-token-0123456789")
    page = admin_client.get(change_url(run)).content.decode()
    assert "plaintext-run-token-0123456789" not in page


def test_runs_can_be_searched_and_filtered(admin_client, data):
    Run.objects.filter(pk=data["team-b"].run.pk).update(
        state=RunState.COMPLETE, status=RunStatus.FAILED, ended=timezone.now()
    )
    assert results(admin_client.get(changelist_url(Run), {"q": "team-b"})) == ["team-b/build run 1"]
    assert results(admin_client.get(changelist_url(Run), {"progress": "failed"})) == ["team-b/build run 1"]
    assert results(admin_client.get(changelist_url(Run), {"progress": "active"})) == ["team-a/build run 1"]
    assert results(admin_client.get(changelist_url(Run), {"state__exact": "pending"})) == ["team-a/build run 1"]
    assert results(admin_client.get(changelist_url(TaskExecution), {"namespace__id__exact": "team-a"})) == [
        "team-a/build run 1 task compile"
    ]
    assert results(admin_client.get(changelist_url(TimelineEntry), {"q": "team-b"})) == ["team-b/build run 1 queued"]


def test_the_cancel_action_asks_the_service_to_cancel(admin_client, data):
    run = data["team-a"].run
    response = admin_client.post(changelist_url(Run), {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested is not None
    assert run.cancel_reason == RunStatusReason.ADMIN_CANCELLED
    assert run.cancel_description == "cancelled by admin (admin)"
    assert Event.objects.filter(kind="started_run_cancellation", namespace_id="team-a").count() == 1
    assert run.timeline.filter(kind="cancel_requested").exists()
    assert any("Asked to cancel 1 run: team-a/build run 1" in m for m in messages_of(response))
    assert data["team-b"].run.cancel_requested is None


def test_cancelling_a_finished_run_changes_nothing(admin_client, data):
    run = data["team-a"].run
    Run.objects.filter(pk=run.pk).update(state=RunState.COMPLETE, status=RunStatus.SUCCESSFUL)
    response = admin_client.post(changelist_url(Run), {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert any("already finished" in m for m in messages_of(response))
    run.refresh_from_db()
    assert run.cancel_requested is None
    assert not Event.objects.filter(kind="started_run_cancellation").exists()


def test_the_cancel_action_on_task_executions_asks_the_service(admin_client, data):
    te = data["team-a"].te
    TaskExecution.objects.filter(pk=te.pk).update(state=TaskExecutionState.RUNNING)
    response = admin_client.post(
        changelist_url(TaskExecution), {"action": "cancel_task_executions", "_selected_action": [te.pk]}
    )
    assert response.status_code == 302
    te.refresh_from_db()
    assert te.cancel_requested is not None
    assert Event.objects.filter(kind="started_task_execution_cancellation", namespace_id="team-a").exists()


# --- tenancy ----------------------------------------------------------------------------------------------------------


def test_staff_with_a_team_a_role_sees_only_team_a_runs(data):
    client = staff_client("ann", TEAM_A_READ)
    assert results(client.get(changelist_url(Run))) == ["team-a/build run 1"]
    assert results(client.get(changelist_url(TaskExecution))) == ["team-a/build run 1 task compile"]
    assert results(client.get(changelist_url(TimelineEntry))) == ["team-a/build run 1 queued"]
    page = client.get(change_url(data["team-a"].run)).content.decode()
    assert "compile" in page
    assert "team-b" not in client.get(changelist_url(Run)).content.decode()


def test_another_namespaces_runs_are_404_for_staff(data):
    client = staff_client("ann", TEAM_A_READ)
    team_b = data["team-b"]
    for obj in (team_b.run, team_b.te, team_b.timeline):
        assert client.get(change_url(obj)).status_code == 404, obj
    assert staff_client("nobody", None).get(changelist_url(Run)).status_code == 403


def test_read_only_staff_cannot_cancel(data):
    client = staff_client("ann", TEAM_A_READ)
    run = data["team-a"].run
    assert "cancel_runs" not in client.get(changelist_url(Run)).content.decode()
    client.post(changelist_url(Run), {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.cancel_requested is None


def test_staff_with_write_rights_cancel_as_themselves_and_only_in_their_namespace(data):
    client = staff_client("ann", TEAM_A_FULL)
    team_a, team_b = data["team-a"].run, data["team-b"].run
    response = client.post(changelist_url(Run), {"action": "cancel_runs", "_selected_action": [team_a.pk, team_b.pk]})
    assert response.status_code == 302
    team_a.refresh_from_db()
    team_b.refresh_from_db()
    assert team_a.cancel_reason == RunStatusReason.USER_CANCELLED
    assert team_a.cancel_description == "cancelled by ann (staff)"
    assert team_b.cancel_requested is None


def test_staff_cannot_cancel_runs_they_may_only_read(data):
    client = staff_client("ann", WRITES_A_READS_B)
    team_a, team_b = data["team-a"].run, data["team-b"].run
    response = client.post(changelist_url(Run), {"action": "cancel_runs", "_selected_action": [team_a.pk, team_b.pk]})
    team_a.refresh_from_db()
    team_b.refresh_from_db()
    assert team_a.cancel_requested is not None
    assert team_b.cancel_requested is None
    assert any("do not allow you to cancel 1 run: team-b/build run 1" in m for m in messages_of(response))
