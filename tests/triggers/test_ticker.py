"""The ticker's wake-ups and its idle cost (triggers/ticker.py): a change rings it once committed, a round does only
what is due, a lost ring is caught by the full round every GOFER_TRIGGER_TICK_SECONDS, and a lease left behind on
this host by a dead process is taken over at once. Counted in statements, never timed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from kernel.bells import Bell
from notifiers import services as notifiers
from tests.triggers.conftest import SUBSCRIPTIONS
from triggers import services, ticker
from triggers.models import TickerLease


@pytest.fixture
def bell():
    listening = Bell(services.TICKER_BELL)
    listening.drain()
    yield listening
    listening.close()


@pytest.fixture
def fresh_ticker(settings):
    """A ticker that has not looked yet, with its periodic work as in production (the notifiers' sweep)."""
    settings.GOFER_TRIGGER_TICK_SECONDS = 30
    settings.GOFER_EXTENSION_HEALTH_SECONDS = 10
    settings.GOFER_NOTIFIER_SWEEP_SECONDS = 5
    saved = dict(ticker._state)
    ticker._state.update(
        renewed=None, looked=None, next_due=None, supervised=None, services=True, periodic={}, seeded=True
    )
    ticker._state["housekeeping"] = timezone.now()
    notifiers._sweep_state.update(last=None, through=None)
    yield ticker
    ticker._state.clear()
    ticker._state.update(saved)


def test_a_subscription_made_through_the_api_rings_the_ticker_only_once_committed(
    builtins, pipeline, alice, bell, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice.post(
            SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1h"}}
        )
        assert response.status_code == 201, response.content
        assert bell.drain() == 0  # not before the commit: the ticker would look before it can see the row
    for callback in callbacks:
        callback()
    assert bell.drain() >= 1


def test_disabling_an_extension_rings_the_ticker(builtins, bell, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert services.set_extension_enabled(services.get_extension("interval"), False)
    assert bell.drain() >= 1


def test_an_idle_installation_costs_a_few_statements_per_full_round_and_none_between(
    builtins, fresh_ticker, django_assert_num_queries
):
    # The first round looks at everything: firings, extensions to supervise, the notifiers' sweep, the sandbox's
    # expired visitors: one statement each.
    with django_assert_num_queries(4):
        wait = ticker._step(leased=False, rang=False)
    # Nothing scheduled, no third-party extension, no notifier subscription: it sleeps the whole fallback period.
    assert wait == pytest.approx(30, abs=1)
    # Woken early with nothing rung (a spurious wake-up): nothing is due, nothing is read.
    with django_assert_num_queries(0):
        ticker._step(leased=False, rang=False)


def test_a_ring_makes_a_full_round_at_once(builtins, fresh_ticker, django_assert_num_queries):
    ticker._step(leased=False, rang=False)
    # Firings, extensions and visitors are looked at again; the sweep keeps its own period (it ran a moment ago).
    with django_assert_num_queries(3):
        ticker._step(leased=False, rang=True)


def test_a_lost_ring_is_caught_by_the_full_round_after_the_fallback_period(
    builtins, pipeline, alice, fresh_ticker, settings
):
    ticker._step(leased=False, rang=False)
    # Made where no ring reaches this ticker (another host): the subscription is in the database only.
    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1h"}})
    ticker._step(leased=False, rang=False)
    assert ticker._state["next_due"] is None  # not seen yet: nothing rang and the period has not passed
    ticker._state["looked"] = timezone.now() - dt.timedelta(seconds=settings.GOFER_TRIGGER_TICK_SECONDS)
    wait = ticker._step(leased=False, rang=False)
    assert ticker._state["next_due"] is not None  # the fallback round found it
    assert wait <= settings.GOFER_TRIGGER_TICK_SECONDS


def test_a_due_firing_is_fired_without_a_full_round(builtins, pipeline, alice, fresh_ticker, monkeypatch):
    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1h"}})
    ticker._step(leased=False, rang=True)
    due = ticker._state["next_due"]
    assert due is not None
    ticked: list[dt.datetime] = []
    monkeypatch.setattr(ticker.firing, "tick", lambda now: ticked.append(now) or due + dt.timedelta(hours=1))
    ticker._step(leased=False, rang=False)
    assert ticked == []  # not due yet
    ticker._state["next_due"] = timezone.now() - dt.timedelta(seconds=1)
    ticker._step(leased=False, rang=False)
    assert len(ticked) == 1


def test_with_notifier_subscriptions_the_sweep_runs_every_sweep_period(builtins, fresh_ticker, monkeypatch):
    monkeypatch.setattr(notifiers, "_notifier_subscriptions", lambda: [(1, "run_failed")])
    swept: list[dt.datetime] = []
    monkeypatch.setattr(notifiers, "requeue_open_notices", lambda now: swept.append(now) or 0)
    monkeypatch.setattr(notifiers, "reevaluate_since", lambda since, pipelines=None: 0)
    wait = ticker._step(leased=False, rang=False)
    assert len(swept) == 1
    assert wait == pytest.approx(5, abs=1)  # the sweep's period, not the ticker's fallback


def test_the_sweep_without_notifier_subscriptions_is_one_query_and_wants_no_round_of_its_own(
    db, django_assert_num_queries
):
    notifiers._sweep_state.update(last=None, through=None)
    with django_assert_num_queries(1):
        assert notifiers.sweep(force=True) is None


def test_a_lease_left_on_this_host_by_a_dead_process_is_taken_over_at_once(db, settings):
    settings.GOFER_TRIGGER_LEASE_SECONDS = 90
    far = timezone.now() + dt.timedelta(seconds=80)
    TickerLease.objects.update_or_create(pk=1, defaults={"owner": f"{ticker.HOST_PREFIX}99999:dead", "expires": far})
    assert ticker.take_lease()
    assert TickerLease.objects.get(pk=1).owner == ticker.OWNER


def test_a_live_lease_of_another_host_is_respected_until_it_lapses(db, settings):
    settings.GOFER_TRIGGER_LEASE_SECONDS = 90
    now = timezone.now()
    TickerLease.objects.update_or_create(
        pk=1, defaults={"owner": "elsewhere:1:abc", "expires": now + dt.timedelta(seconds=80)}
    )
    assert not ticker.take_lease(now)
    assert ticker.take_lease(now + dt.timedelta(seconds=81))
