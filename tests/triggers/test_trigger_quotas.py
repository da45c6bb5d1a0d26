"""Runs a subscription starts obey the namespace's quotas (pipelines/quotas.py) like any other: the firing is
recorded as failed with the quota's message, no run is started, and the ticker carries on."""

from __future__ import annotations

from pipelines import quotas
from pipelines.models import Namespace
from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, subscription, tick_after
from triggers.models import Firing


def test_a_firing_over_the_hourly_quota_starts_no_run_and_says_why(builtins, pipeline, alice):
    quotas.update_quotas(Namespace.objects.get(pk="team-a"), {"runs_per_hour": 1})
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "10s"}}
    )
    assert response.status_code == 201, response.content

    tick_after(11)
    assert len(runs_of(pipeline)) == 1
    tick_after(22)

    assert len(runs_of(pipeline)) == 1
    failed = Firing.objects.filter(outcome="failed").order_by("-id").first()
    assert failed is not None and "runs_per_hour" in failed.description and "limit 1" in failed.description
    assert subscription(pipeline, "interval", "often").status_reason
