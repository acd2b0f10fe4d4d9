"""The pool of standalone RPC proxies (shared.runtime.rpc.ProxyPool) on a real broker: calls
reuse one proxy, and so one reply queue, rather than declaring a queue each; a proxy whose
connection the broker closed, or whose call failed on the way, is not used again."""

from __future__ import annotations

import time

import pytest
from nameko.exceptions import UnknownService
from nameko.rpc import rpc

from shared.kernel.errors import NotFound
from shared.runtime.rpc import ProxyPool
from shared.tools.broker import LocalRabbit


class Echo:
    name = "pool_echo"

    @rpc
    def echo(self, value):
        return value

    @rpc
    def refuse(self):
        raise NotFound("thing", "t-1")


@pytest.fixture
def pool(container_factory, amqp_uri):
    container_factory(Echo, {"AMQP_URI": amqp_uri}).start()
    pool = ProxyPool(amqp_uri, timeout=10)
    yield pool
    pool.clear()


def _reply_queue(pool: ProxyPool) -> str:
    [held] = pool._idle
    return held._reply_listener.routing_key


def test_calls_reuse_one_proxy_and_its_reply_queue(pool):
    seen = set()
    for n in range(20):
        with pool.proxy() as proxy:
            assert proxy.pool_echo.echo(n) == n
            seen.add(id(proxy))
    assert len(seen) == 1 and len(pool._idle) == 1


def test_two_callers_at_once_get_two_proxies(pool):
    with pool.proxy() as first, pool.proxy() as second:
        assert first is not second
        assert (first.pool_echo.echo(1), second.pool_echo.echo(2)) == (1, 2)
    assert len(pool._idle) == 2


def test_the_services_own_error_keeps_the_proxy(pool):
    with pool.proxy() as proxy:
        proxy.pool_echo.echo(0)
    queue = _reply_queue(pool)
    with pytest.raises(NotFound), pool.proxy() as proxy:
        proxy.pool_echo.refuse()
    assert _reply_queue(pool) == queue


def test_a_failed_call_closes_its_proxy(pool):
    with pool.proxy() as proxy:
        proxy.pool_echo.echo(0)
    with pytest.raises(UnknownService), pool.proxy() as proxy:
        proxy.no_such_service.echo(0)
    assert pool._idle == []
    with pool.proxy() as again:
        assert again is not proxy and again.pool_echo.echo(3) == 3


def test_a_proxy_whose_connection_the_broker_closed_is_not_used(pool, rabbit: LocalRabbit):
    with pool.proxy() as proxy:
        proxy.pool_echo.echo(0)
    [held] = pool._idle
    port = held._reply_listener.queue_consumer.connection.connection.sock.getsockname()[1]
    listed = rabbit.ctl("list_connections", "pid", "peer_port").stdout.splitlines()
    [pid] = [line.split("\t")[0] for line in listed if line.endswith(f"\t{port}")]
    assert rabbit.ctl("close_connection", pid, "closed by the test").returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and str(port) in rabbit.ctl(
            "list_connections", "peer_port").stdout.split():
        time.sleep(0.1)
    with pool.proxy() as again:
        assert again is not proxy
        assert again.pool_echo.echo(4) == 4
