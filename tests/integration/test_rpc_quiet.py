"""What an operator reads when a service is not up: the call's own error, not py-amqp's
warning about the publisher confirm that reaches the failed call's closing channel."""

from __future__ import annotations

import logging

import pytest
from nameko.exceptions import UnknownService

from shared.runtime.rpc import cluster


def test_asking_a_service_that_is_not_up_says_so_without_a_broker_warning(amqp_uri, caplog):
    with caplog.at_level(logging.DEBUG, logger="amqp"):
        for _ in range(3):
            with cluster(amqp_uri, timeout=5) as rpc, pytest.raises(UnknownService):
                rpc.nobody_here.status()
    assert [r.getMessage() for r in caplog.records
            if r.name == "amqp" and r.levelno >= logging.WARNING] == []
