"""The soak's verdict on a trend: a last window within the margins of the first is flat, one
that grew is not, and one where the platform no longer acknowledged writes is not either
(its zero latency and lag would otherwise pass for flat)."""

from __future__ import annotations

from shared.tools.chaos_soak import _flat


def window(acked: int, p50: float, p99: float, lag: float, rss: float) -> dict:
    return {"acked": acked, "p50_ms": p50, "p99_ms": p99, "view_lag": lag,
            "rss_mb": {"visits": rss}}


def test_flat_growing_and_dead_windows() -> None:
    first = window(8000, 40.0, 250.0, 40.0, 85.0)
    assert all(_flat(first, window(8100, 42.0, 260.0, 50.0, 90.0)).values())
    grown = _flat(first, window(8000, 40.0, 250.0, 40.0, 140.0))
    assert grown["rss_mb.visits"] is False and grown["serving"] is True
    dead = _flat(first, window(0, 0.0, 0.0, 0.0, 85.0))
    assert dead["serving"] is False
    assert dead["p99_ms"] is True  # which is why serving is asked as well


def test_deaths_beyond_the_kills_a_fault_made_are_counted() -> None:
    from shared.tools.chaos_faults import died

    before = {"visits": 2, "cases": 0}
    assert died(before, {"visits": 3, "cases": 1}, killed=1) == {}
    assert died(before, {"visits": 4, "cases": 1}, killed=1) == {"visits": 1}
    assert died(before, {"visits": 3, "cases": 0}, killed=0) == {"visits": 1}
    assert died({}, {"gateway": 1}, killed=0) == {"gateway": 1}
