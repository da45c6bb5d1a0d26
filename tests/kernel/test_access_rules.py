"""Every API view and websocket consumer declares its access rule, and none can get around the gate: a class that
does not, or that overrides the checks, cannot be declared at all."""

from __future__ import annotations

import pytest

from kernel.api.views import GoferAPIView, rule
from kernel.api.websockets import GoferWebsocketConsumer
from kernel.choices import Action, Resource


def test_a_view_whose_handler_has_no_rule_cannot_be_declared():
    with pytest.raises(TypeError, match=r"NoRule.post has no access rule"):

        class NoRule(GoferAPIView):
            rules = {"GET": rule(Action.READ, Resource.RUNS)}

            def get(self, request):
                return None

            def post(self, request):
                return None


def test_a_view_that_overrides_the_gate_cannot_be_declared():
    with pytest.raises(TypeError, match=r"Sneaky may not override initial"):

        class Sneaky(GoferAPIView):
            rules = {"GET": rule(Action.READ, Resource.RUNS)}

            def initial(self, request, *args, **kwargs):
                return None


def test_a_view_with_a_rule_for_each_handler_is_declared():
    class Fine(GoferAPIView):
        rules = {"GET": rule(Action.READ, Resource.RUNS)}

        def get(self, request):
            return None

    assert Fine.rules["GET"].action == Action.READ


def test_a_websocket_consumer_without_a_rule_cannot_be_declared():
    with pytest.raises(TypeError, match=r"NoRule has no access rule"):

        class NoRule(GoferWebsocketConsumer):
            async def open(self):
                return None


@pytest.mark.parametrize("guarded", ["websocket_connect", "connect", "_admit"])
def test_a_websocket_consumer_that_overrides_the_gate_cannot_be_declared(guarded):
    async def bypass(self, *args):
        return None

    with pytest.raises(TypeError, match=f"may not override {guarded}"):
        type("Sneaky", (GoferWebsocketConsumer,), {"rule": rule(Action.READ, Resource.EVENTS), guarded: bypass})


def test_a_websocket_consumer_with_a_rule_is_declared():
    class Fine(GoferWebsocketConsumer):
        rule = rule(Action.READ, Resource.EVENTS)

    assert Fine.rule.resources == (Resource.EVENTS,)
