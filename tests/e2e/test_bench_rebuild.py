"""`grassroots bench rebuild --quick`: a small district log rebuilt into the compliance view
in-process and over RPC by the running visits and compliance services, each up to the log's
head (or the bench fails); the JSON has every figure (the speed is not judged)."""

from __future__ import annotations

import json

import pytest

from shared.eventlog import EventLog, NewEvent
from shared.tools.bench_rebuild import _copy
from shared.tools.cli import main


def test_bench_rebuild_folds_the_district_over_rpc(tmp_path, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    assert main(["bench", "rebuild", "--quick", "--cache", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["cadres"], result["months"]) == (200, 2)
    assert result["events"] > 1000
    for key in ("rebuild_ev_s", "rebuild_rpc_ev_s", "catch_up_rpc_s", "rebuild_rpc_s"):
        assert result[key] > 0, key
    assert result["rpc_vs_in_process"] == pytest.approx(
        result["rebuild_rpc_ev_s"] / result["rebuild_ev_s"], abs=0.01)


def test_the_copy_keeps_residents_readable_with_keys_where_the_service_keeps_them(tmp_path
                                                                                 ) -> None:
    """The district log holds its residents' keys in its own database; the services keep them
    in var/keys/: copied there, so no resident of the copy reads as forgotten."""
    source = EventLog.open(f"sqlite:///{tmp_path / 'district.db'}", service="visits")
    source.append("resident-1", [NewEvent("resident.registered", {"name": "Ann Smith"},
                                          subject="r-1", personal=("name",))])
    source.close()
    var = tmp_path / "var"
    assert _copy(tmp_path / "district.db", var / "visits.db") == 1
    copy = EventLog.open(f"sqlite:///{var / 'visits.db'}", service="visits",
                         keys_url=f"sqlite:///{var / 'keys' / 'visits.db'}")
    try:
        record = copy.read_stream("resident-1")[0]
        assert (record.data, record.redacted) == ({"name": "Ann Smith"}, ())
        assert copy.verify().ok
    finally:
        copy.close()
