"""An extension's service on Docker: its port is published on GOFER_EXTENSION_HOST when the container has a network
of its own, and it is told to listen where that port reaches it.

This machine's dockerd runs with --bridge=none, so no container here can have a published port: the arguments sent
to Docker are checked, and the host-network path (which the third-party extension tests use) runs for real."""

from __future__ import annotations

from runs.schedulers.docker import DockerScheduler, published_ports
from runs.schedulers.local import LocalScheduler


def test_a_service_on_its_own_network_has_its_port_published_on_the_extension_host_only():
    assert published_ports({8080: 41234}, "", "127.0.0.1") == {
        "ports": [8080],
        "port_bindings": {8080: ("127.0.0.1", 41234)},
    }
    assert published_ports({8080: 41234}, "gofer-net", "10.1.2.3")["port_bindings"] == {8080: ("10.1.2.3", 41234)}


def test_nothing_is_published_on_the_host_network_on_no_network_or_for_a_task_without_ports():
    assert published_ports({8080: 41234}, "host", "127.0.0.1") == {}
    assert published_ports({8080: 41234}, "none", "127.0.0.1") == {}
    assert published_ports({}, "", "127.0.0.1") == {}


def test_a_service_listens_on_every_interface_of_its_own_network_but_only_on_the_host_address_on_the_hosts(settings):
    settings.GOFER_DOCKER_NETWORK_MODE = ""
    assert DockerScheduler().service_bind_host("127.0.0.1") == "0.0.0.0"  # noqa: S104 - the expected answer, not a bind
    settings.GOFER_DOCKER_NETWORK_MODE = "host"
    assert DockerScheduler().service_bind_host("127.0.0.1") == "127.0.0.1"
    assert LocalScheduler().service_bind_host("127.0.0.1") == "127.0.0.1"
