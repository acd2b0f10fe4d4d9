"""`grassroots bench log` runs end to end (a smoke test: figures are not asserted)."""

import json

from shared.tools import bench

KEYS = {"events", "rounds", "sqlite_version", "append_single_ev_s", "append_batch_ev_s",
        "read_ev_s", "verify_ev_s", "peer_append_single_ev_s", "peer_read_ev_s",
        "sqlite_floor_append_single_ev_s", "append_single_vs_sqlite_floor",
        "append_batch_vs_peer", "append_batch_cpu_vs_peer"}


def test_bench_log_prints_one_json_object(capsys):
    assert bench.main(["log", "--events", "300", "--rounds", "2", "--single", "20"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result.keys() >= KEYS
    assert (result["events"], result["single_events"], result["rounds"]) == (300, 20, 2)
    assert all(result[k] > 0 for k in KEYS if k.endswith("_ev_s"))
    assert len(result["samples"]["read_ev_s"]) == 2
    assert "round 2/2" in err


def test_bench_log_without_the_peer_leaves_its_figures_out(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_eventsourcing(name, *args, **kwargs):
        if name.startswith("eventsourcing"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_eventsourcing)
    result = bench.bench_log(events=200, rounds=1, single=10)
    assert "not installed" in capsys.readouterr().err
    assert not any(k.startswith("peer_") or k.endswith("_vs_peer") for k in result)
    assert result["append_batch_ev_s"] > 0 and "append_single_ev_s" not in result["targets_met"]
    assert result["sqlite_floor_append_single_ev_s"] > 0, "the floor needs no peer"


def test_the_grassroots_command_passes_rounds_and_single_through(capsys):
    from shared.tools.cli import main

    assert main(["bench", "log", "--events", "200", "--rounds", "1", "--single", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["events"], result["single_events"], result["rounds"]) == (200, 10, 1)
