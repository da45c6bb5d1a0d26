"""Quotas in the operators' console: shown with their use, changed by admins through quotas.update_quotas (the
same checks and event as PUT .../quotas), read-only for tenant staff, invisible to other tenants' staff."""

from __future__ import annotations

from events.models import Event
from pipelines import quotas
from pipelines.models import Namespace, NamespaceQuotas
from tests.support.admin import TEAM_A_FULL, change_url, staff_client


def form(**values) -> dict:
    data = {name: "" for name in quotas.NAMES}
    data["weight"] = "1"
    data.update({key: str(value) for key, value in values.items()})
    return data


def test_the_namespace_page_links_its_quotas_and_the_quotas_page_shows_the_use(admin_client, team_a_pipeline):
    namespace = Namespace.objects.get(pk="team-a")
    page = admin_client.get(change_url(namespace)).content.decode()
    row = NamespaceQuotas.objects.get(pk="team-a")
    assert change_url(row) in page

    quotas_page = admin_client.get(change_url(row)).content.decode()
    assert "pipelines: 1 pipelines" in quotas_page and "tasks_per_pipeline: 2 tasks" in quotas_page


def test_an_admin_changes_quotas_through_the_service(admin_client, namespaces):
    row = quotas.quotas_of("team-a")

    response = admin_client.post(change_url(row), form(runs_per_hour=12, weight=4))

    assert response.status_code == 302, response.content
    row.refresh_from_db()
    assert (row.runs_per_hour, row.weight, row.pipelines) == (12, 4, None)
    assert Event.objects.filter(kind="updated_namespace", namespace_id="team-a").exists()


def test_tenant_staff_see_their_quotas_but_cannot_change_them_nor_see_others(namespaces):
    client = staff_client("ann", TEAM_A_FULL)
    mine, theirs = quotas.quotas_of("team-a"), quotas.quotas_of("team-b")

    assert client.get(change_url(mine)).status_code == 200
    client.post(change_url(mine), form(runs_per_hour=1000))
    mine.refresh_from_db()
    assert mine.runs_per_hour is None
    assert client.get(change_url(theirs)).status_code == 404
