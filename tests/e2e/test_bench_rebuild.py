"""`grassroots bench rebuild --quick`: a small district log rebuilt into the compliance view
in-process and over RPC by the running visits and compliance services, each up to the log's
head (or the bench fails); the JSON has every figure (the speed is not judged)."""

from __future__ import annotations

import json

import pytest

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
