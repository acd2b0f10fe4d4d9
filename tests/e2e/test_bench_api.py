"""`grassroots bench api` end to end with tiny sizes: its own broker, the platform and the
floor pair, driven over HTTP; the JSON it prints has every figure (the speed is not judged)."""

from __future__ import annotations

import json

import pytest

from shared.tools import bench_api


def test_bench_api_prints_rates_latencies_ratios_and_view_lag(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_api.main(["--requests", "6"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests"] == 6 and result["clients"] == [1, 8]
    for clients in ("clients_1", "clients_8"):
        for side in ("platform", "floor"):
            figures = result[clients][side]
            assert set(figures) == {"req_s", "p50_ms", "p99_ms"}
            assert figures["req_s"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert result[clients]["ratio"] == pytest.approx(
            result[clients]["platform"]["req_s"] / result[clients]["floor"]["req_s"], abs=1e-3)
        cpu = result[clients]["cpu_ms_per_request"]
        assert set(cpu["floor"]) == {"bench_echo", "bench_http"}
        assert {"gateway", "visits", "compliance"} <= set(cpu["platform"])
        assert all(ms >= 0 for side in cpu.values() for ms in side.values())
    lag = result["view_lag_ms"]
    assert 0 <= lag["p50"] <= lag["p99"] and lag["poll_ms"] == bench_api.LAG_POLL * 1000
    assert set(result["meets"]) == set(result["targets"]) == set(bench_api.TARGETS)
    assert all(isinstance(v, bool) for v in result["meets"].values())
