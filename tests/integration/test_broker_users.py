"""The broker is no back door: no guest account, and each user may do only what its part needs.

A node of this module's own (not the session's), so that the calls the users *are* allowed to
publish reach no running service. Every refusal is made by RabbitMQ itself (403
ACCESS_REFUSED), and each has an allowed neighbour beside it, so a test cannot pass because
the connection was broken for another reason.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import amqp
import kombu
import pytest
from amqp.exceptions import AccessRefused

from shared.runtime.rpc import cluster
from shared.tools.broker import HOST, LocalRabbit, amqp_answers, free_port
from shared.tools.brokerauth import EVENTS_EXCHANGE, RPC_EXCHANGE

# (user, routing key on nameko-rpc, allowed): what each user may call.
CALLS = [
    ("compliance", "visits.read_log", True),
    ("compliance", "visits.status", True),
    ("compliance", "visits.record_visit", False),
    ("compliance", "visits.forget_resident", False),
    ("compliance", "compliance.rebuild", False),
    ("gateway", "visits.record_visit", True),
    ("gateway", "visits.get_visit", True),
    ("gateway", "compliance.report", True),
    ("gateway", "visits.read_log", False),
    ("gateway", "visits.forget_resident", False),
    ("gateway", "compliance.rebuild", False),
    ("operator", "visits.status", True),
    ("operator", "compliance.rebuild", True),
    ("operator", "visits.record_visit", False),
    ("operator", "visits.get_visit", False),
    ("visits", "compliance.report", False),
    ("cases", "visits.read_log", True),
    ("cases", "visits.status", True),
    ("cases", "visits.record_visit", False),
    ("cases", "compliance.report", False),
    ("caseboard", "cases.read_log", True),
    ("caseboard", "cases.register_case", False),
    ("caseboard", "visits.read_log", False),
    ("gateway", "cases.open311_read", True),
    ("gateway", "cases.read_log", False),
    ("visits", "visits.record_visit", False),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbit]:
    port = free_port()
    rabbit = LocalRabbit(tmp_path_factory.mktemp("rabbit-users"), port, f"grassroots-users-{port}",
                         dist_port=free_port())
    rabbit.start()
    try:
        # What the services would have declared by now: the exchanges and visits' RPC queue.
        with kombu.Connection(rabbit.uris["visits"]) as conn:
            channel = conn.channel()
            for exchange in (RPC_EXCHANGE, EVENTS_EXCHANGE):
                channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
            channel.queue_declare("rpc-visits", durable=True, auto_delete=False)
            channel.queue_bind("rpc-visits", RPC_EXCHANGE, "visits.*")
        yield rabbit
    finally:
        rabbit.stop()


def as_user(node: LocalRabbit, user: str, action: Callable[[amqp.Channel], object]) -> None:
    """Run action on a fresh channel (publisher confirms on, so a refused publish raises)."""
    with kombu.Connection(node.uris[user], transport_options={"confirm_publish": True}) as conn:
        action(conn.channel())


def publish(exchange: str, routing_key: str) -> Callable[[amqp.Channel], object]:
    return lambda channel: channel.basic_publish(amqp.Message("{}"), exchange, routing_key)


def test_the_guest_account_is_refused_and_every_user_logs_in(node: LocalRabbit) -> None:
    assert not amqp_answers(f"amqp://guest:guest@{HOST}:{node.port}//")
    assert "guest" not in node.ctl("list_users", "--quiet").stdout.split()
    for user, uri in node.uris.items():
        assert amqp_answers(uri), user
    assert not amqp_answers(node.uris["visits"].replace(node.passwords["visits"], "wrong"))


def test_passwords_are_kept_for_the_owner_only(node: LocalRabbit) -> None:
    for path in (node.users_file, node.base_dir / "definitions.json"):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
    assert node.passwords["visits"] not in (node.base_dir / "definitions.json").read_text()


@pytest.mark.parametrize(("user", "routing_key", "allowed"), CALLS)
def test_each_user_may_call_only_what_it_needs(node: LocalRabbit, user: str,
                                               routing_key: str, allowed: bool) -> None:
    call = publish(RPC_EXCHANGE, routing_key)
    if allowed:
        as_user(node, user, call)
    else:
        with pytest.raises(AccessRefused):
            as_user(node, user, call)


@pytest.mark.parametrize("user", ["compliance", "gateway", "operator"])
def test_only_visits_reads_its_rpc_queue(node: LocalRabbit, user: str) -> None:
    as_user(node, "visits", lambda channel: channel.basic_get("rpc-visits"))
    with pytest.raises(AccessRefused):
        as_user(node, user, lambda channel: channel.basic_get("rpc-visits"))
    with pytest.raises(AccessRefused):
        as_user(node, user, lambda channel: channel.basic_consume("rpc-visits"))


@pytest.mark.parametrize(("user", "queue"), [
    ("compliance", "rpc.reply-standalone_rpc_proxy-{}"),
    ("gateway", "rpc.reply-gateway-{}"),
    ("operator", "rpc.reply-standalone_rpc_proxy-{}"),
])
def test_no_user_can_bind_a_queue_to_listen_in_on_calls(node: LocalRabbit, user: str,
                                                          queue: str) -> None:
    key = str(uuid.uuid4())
    name = queue.format(key)

    def bind(binding_key: str) -> Callable[[amqp.Channel], object]:
        def action(channel: amqp.Channel) -> None:
            channel.queue_declare(name, auto_delete=True)
            channel.queue_bind(name, RPC_EXCHANGE, binding_key)
        return action

    as_user(node, user, bind(key))  # its own reply queue, as nameko binds it
    for stolen in ("visits.*", "visits.record_visit", "#"):
        with pytest.raises(AccessRefused):
            as_user(node, user, bind(stolen))


@pytest.mark.parametrize("user", ["cases", "compliance", "caseboard", "gateway", "operator"])
def test_only_visits_publishes_its_events(node: LocalRabbit, user: str) -> None:
    as_user(node, "visits", publish(EVENTS_EXCHANGE, "visit.recorded"))
    with pytest.raises(AccessRefused):
        as_user(node, user, publish(EVENTS_EXCHANGE, "visit.recorded"))


def test_a_nameko_client_with_the_compliance_login_cannot_record_a_visit(
    node: LocalRabbit,
) -> None:
    """The attack as it would be made: nameko's own RPC client, with stolen compliance creds."""
    with cluster(node.uris["compliance"], timeout=5) as rpc, pytest.raises(AccessRefused):
        rpc.visits.record_visit({"id": "v-x"}, actor="operator:forged")


def test_a_guest_account_left_from_before_is_removed_on_start(node: LocalRabbit) -> None:
    """A node whose data predates the users (as an older `make up` left var/rabbitmq)."""
    guest = f"amqp://guest:guest@{HOST}:{node.port}//"
    for args in (("add_user", "guest", "guest"), ("set_permissions", "guest", ".*", ".*", ".*")):
        assert node.ctl(*args).returncode == 0
    assert amqp_answers(guest)
    node.stop()
    node.start()
    assert not amqp_answers(guest)
    assert all(amqp_answers(uri) for uri in node.uris.values())


def test_cases_hears_only_the_visit_events_it_handles(node: LocalRabbit) -> None:
    """cases binds its handler queues to visit.recorded/corrected/retracted, not to `#`."""
    queue = "evt-visits-visit.recorded--cases.on_visit_recorded"

    def bind(key: str) -> Callable[[amqp.Channel], object]:
        def action(channel: amqp.Channel) -> None:
            channel.queue_declare(queue, durable=True, auto_delete=False)
            channel.queue_bind(queue, EVENTS_EXCHANGE, key)
        return action

    as_user(node, "cases", bind("visit.recorded"))
    for other in ("#", "cadre.enrolled"):
        with pytest.raises(AccessRefused):
            as_user(node, "cases", bind(other))
