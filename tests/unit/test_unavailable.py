"""A decision that reads another service's log (the cases service reads the roster and the
residents visits issued) answers 503 when that service or the broker is away, not 500; a
fault of this service's own (a file it cannot write) is not hidden behind a 503."""

from __future__ import annotations

import pytest
from amqp.exceptions import ConnectionForced
from nameko.exceptions import RpcTimeout, UnknownService

from shared.eventlog import EventLog
from shared.kernel.errors import Unavailable
from shared.runtime.bases import database


@pytest.fixture
def log(tmp_path) -> EventLog:
    return EventLog.open(f"sqlite:///{tmp_path / 'cases.db'}", service="cases")


@pytest.mark.parametrize("away", [
    RpcTimeout("visits.read_log: no answer in 35s"), UnknownService("visits"),
    ConnectionRefusedError(111, "refused"), ConnectionForced("broker shutdown"),
])
def test_a_log_this_service_reads_being_away_is_unavailable(log, away) -> None:
    with pytest.raises(Unavailable) as raised, database(log):
        raise away
    assert raised.value.http_status == 503
    assert raised.value.retry_after > 0


def test_its_own_faults_are_not_turned_into_503(log) -> None:
    with pytest.raises(PermissionError), database(log):
        raise PermissionError(13, "cannot write")
    with pytest.raises(KeyError), database(log):
        raise KeyError("a bug")
