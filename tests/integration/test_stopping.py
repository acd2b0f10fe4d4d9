"""A service stops within seconds of being asked, on a real broker: a worker that overruns is
ended and its message delivered again (to the next process, which answers the same caller), a
tick in flight does not hold the stop, and a consumer waiting for a broker that is gone lets
go (shared/runtime/stopping.py, timed.py, survive.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import eventlet
import pytest
from nameko.dependency_providers import Config
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from shared.runtime import survive
from shared.runtime.stopping import CLASS_PATH, WORKER_GRACE, PromptContainer
from shared.runtime.timed import tick
from shared.tools.broker import LocalRabbit
from shared.tools.chaos_proxy import Proxy

BOUND = WORKER_GRACE + 3  # seconds: the grace, and the consumers' one-second loop, with room


class Slow:
    """Answers `echo` at once, or after a minute when its config says STALL."""

    name = "stopping_probe"
    config: dict[str, Any] = Config()

    @rpc
    def echo(self, text: str) -> str:
        if self.config.get("STALL"):
            eventlet.sleep(60)
        return text


class Ticking:
    """A tick that runs for a minute."""

    name = "stopping_ticker"
    ticks: list[float] = []

    @tick(interval=0.05, eager=True)
    def busy(self) -> None:
        Ticking.ticks.append(time.monotonic())
        eventlet.sleep(60)


def container(cls: type, uri: str, **config: Any) -> PromptContainer:
    made = PromptContainer(cls, {"AMQP_URI": uri, "SERVICE_CONTAINER_CLS": CLASS_PATH,
                                 **config})
    made.start()
    return made


def timed_stop(made: PromptContainer) -> float:
    """Seconds `stop()` took; fails (instead of hanging) past twice the bound."""
    began = time.monotonic()
    with eventlet.Timeout(2 * BOUND):
        made.stop()
    return time.monotonic() - began


@pytest.fixture
def patched() -> Iterator[None]:
    survive.install()  # as every service process runs (shared.runtime.serve)
    yield


def test_an_overrunning_worker_is_ended_and_its_call_answered_by_the_next(
        patched: None, amqp_uri: str) -> None:
    first = container(Slow, amqp_uri, STALL=True)
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=30) as cluster:
        reply = cluster.stopping_probe.echo.call_async("kept")
        eventlet.sleep(0.5)  # the call is running in `first`, stalled
        assert len(first._worker_threads) == 1
        took = timed_stop(first)
        second = container(Slow, amqp_uri)
        try:
            assert reply.result() == "kept"  # redelivered: not acknowledged by `first`
        finally:
            second.stop()
    assert WORKER_GRACE <= took < BOUND, took


def test_a_tick_in_flight_does_not_hold_the_stop(patched: None, amqp_uri: str) -> None:
    Ticking.ticks.clear()
    made = container(Ticking, amqp_uri)
    eventlet.sleep(0.3)
    assert len(Ticking.ticks) == 1  # the first tick is still running: no second one
    took = timed_stop(made)
    assert took < BOUND, took
    assert not made._worker_threads


def test_a_consumer_waiting_for_a_gone_broker_lets_the_service_stop(
        patched: None, rabbit: LocalRabbit, amqp_uri: str) -> None:
    proxy = Proxy(rabbit.port).start()
    try:
        made = container(Slow, amqp_uri.replace(f":{rabbit.port}/", f":{proxy.port}/"))
        proxy.cut()  # the connection dropped, new ones refused: the consumer retries
        eventlet.sleep(1.0)
        took = timed_stop(made)
    finally:
        proxy.stop()
    assert took < BOUND, took
