"""The embedded default's queue (runs/broker.py): the pusher sleeps until a ring, and a lost ring is caught by the
fallback read.

The broker is exercised as django-q2's pusher uses it: ``dequeue()`` called in a loop in a thread of its own, against
the real test database. "Woken by the ring" is shown without timing anything: the fallback period is set to an
hour, so a dequeue that returns the message before the test's (generous) wait ends can only have been woken.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from kernel import bells
from kernel.bells import Bell, bell_directory, ring
from runs import broker as broker_module
from runs.broker import WakeableORM
from tests.runs.test_worker_processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Pusher:
    """``dequeue()`` in a loop in a thread, as django-q2's pusher process runs it; records what each wait saw."""

    def __init__(self, broker: WakeableORM) -> None:
        self.broker = broker
        self.received: list[str] = []
        self.waits: list[bool] = []  # what each bell.wait returned: True when a ring woke it
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        bell = self.broker.bell()
        real_wait = bell.wait

        def recording_wait(timeout: float) -> bool:
            self.ready.set()
            rang = real_wait(min(timeout, 0.5) if self.stop.is_set() else timeout)
            self.waits.append(rang)
            return rang

        bell.wait = recording_wait
        try:
            while not self.stop.is_set():
                for _ack, payload in self.broker.dequeue() or []:
                    self.received.append(SignedPackage.loads(payload)["id"])
        finally:
            bell.close()
            connection.close()

    def __enter__(self) -> Pusher:
        self.thread.start()
        assert self.ready.wait(30), "the pusher never reached its wait"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        ring(self.broker.list_key)
        self.thread.join(30)


@pytest.fixture
def queue_name():
    name = f"wake-{time.time_ns()}"
    yield name
    OrmQ.objects.filter(key=name).delete()


def message(task_id: str) -> str:
    return SignedPackage.dumps({"id": task_id, "name": task_id, "func": "math.copysign", "args": (1, 1), "kwargs": {}})


def test_an_enqueued_message_wakes_the_idle_pusher_long_before_its_fallback_read(queue_name, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 3600)  # the fallback would take an hour: only a ring can deliver in time
    with Pusher(WakeableORM(list_key=queue_name)) as pusher:
        WakeableORM(list_key=queue_name).enqueue(message("first"))
        wait_for(lambda: pusher.received == ["first"], 60, "the pusher to receive the message")
    assert True in pusher.waits  # it was a ring that ended the wait


def test_a_message_enqueued_inside_a_transaction_rings_only_after_the_commit(queue_name, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 3600)
    rings: list[str] = []
    real_ring = broker_module.ring
    monkeypatch.setattr(broker_module, "ring", lambda key: rings.append(key) or real_ring(key))
    with Pusher(WakeableORM(list_key=queue_name)) as pusher:
        with transaction.atomic():
            WakeableORM(list_key=queue_name).enqueue(message("committed"))
            assert rings == []  # a ring now would wake a pusher that cannot see the row yet
        assert rings == [queue_name]
        wait_for(lambda: pusher.received == ["committed"], 60, "the pusher to receive the message")


def test_a_lost_ring_is_caught_by_the_fallback_read(queue_name, monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 1)
    with Pusher(WakeableORM(list_key=queue_name)) as pusher:
        # Written as a process that died between its commit and its ring would leave it: a row, and no ring.
        OrmQ.objects.create(key=queue_name, payload=message("unrung"), lock=timezone.now())
        close_old_connections()
        wait_for(lambda: pusher.received == ["unrung"], 60, "the fallback read to find the message")
        # Every wait that ended before the message arrived ended by its timeout, not by a ring.
        assert pusher.waits and not any(pusher.waits)


def test_a_ring_to_a_pusher_that_is_gone_removes_its_bell(queue_name):
    bell = Bell(queue_name)
    entry = bell.entry
    bell.sock.close()  # the process died without cleaning up: the entry is left behind
    assert entry.exists()
    assert ring(queue_name) == 0
    assert not entry.exists()
    assert list(bell_directory(queue_name).iterdir()) == []


def test_two_pushers_on_one_queue_are_both_rung(queue_name):
    first, second = Bell(queue_name), Bell.__new__(Bell)
    # A second pusher (another cluster on this host) registers under its own name.
    second.entry = bell_directory(queue_name) / "other"
    second.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    second.sock.bind(bells._address(second.entry))
    second.sock.setblocking(False)
    try:
        assert ring(queue_name) == 2
        assert first.drain() == 1
        assert second.drain() == 1
    finally:
        first.close()
        second.close()
