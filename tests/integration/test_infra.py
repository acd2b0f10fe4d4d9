"""The test infrastructure itself: a real broker, a real PostgreSQL, and nodes that stop."""

import uuid

import kombu
import sqlalchemy as sa

from shared.tools.broker import LocalRabbit, amqp_answers, free_port


def test_broker_round_trip_with_confirms(amqp_uri):
    name = f"test-infra-{uuid.uuid4().hex}"
    exchange = kombu.Exchange(name, type="direct", durable=True)
    queue = kombu.Queue(name, exchange, routing_key=name, durable=True)
    body = {"id": name, "text": "ünïcode survives"}
    with kombu.Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue(channel).declare()
        try:
            producer = kombu.Producer(channel, exchange=exchange)
            # With confirm_publish, publish() returns only once the broker has confirmed.
            producer.publish(
                body, routing_key=name, delivery_mode=kombu.entity.PERSISTENT_DELIVERY_MODE
            )
            message = queue(channel).get(no_ack=False)
            assert message is not None
            assert message.payload == body
            assert message.properties["delivery_mode"] == 2
            message.ack()
            assert queue(channel).get() is None
        finally:
            queue(channel).delete()
            exchange(channel).delete()
            channel.close()


def test_postgres_answers(pg_url):
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(sa.text("select version()")).scalar_one()
            assert version.startswith("PostgreSQL ")
            conn.execute(sa.text("create table notes (id serial primary key, body text not null)"))
            conn.execute(
                sa.text("insert into notes (body) values (:body)"),
                [{"body": "first"}, {"body": "second"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id, body from notes order by id")).all()
        assert [tuple(row) for row in rows] == [(1, "first"), (2, "second")]
    finally:
        engine.dispose()


def test_each_test_gets_a_fresh_database(pg_url):
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("notes")
            name = conn.execute(sa.text("select current_database()")).scalar_one()
        assert pg_url.endswith("/" + name)
    finally:
        engine.dispose()


def test_local_rabbit_stop_really_stops(tmp_path):
    port = free_port()
    node = LocalRabbit(tmp_path / "rabbit", port, f"grassroots-{port}")
    node.start()
    uri = node.uri
    try:
        assert node.running()
        assert amqp_answers(uri)
    finally:
        node.stop()
    assert not node.running()
    assert not amqp_answers(uri)
    assert any((tmp_path / "rabbit" / "log").glob("*.log"))
