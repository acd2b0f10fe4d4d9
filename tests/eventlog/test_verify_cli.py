"""`grassroots verify`: an auditor checks the logs from their databases, keeps signed heads as
evidence, and is told the first bad position of a log that was tampered with."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from shared.eventlog import EventLog, NewEvent, Signer
from shared.tools.cli import main


@pytest.fixture
def logs(tmp_path, monkeypatch) -> dict[str, str]:
    """A visits log of 30 records and a cases log of 5, where `grassroots up` would say."""
    monkeypatch.setenv("GRASSROOTS_SIGNING_KEY", Signer.generate())
    urls = {}
    for name, count in (("visits", 30), ("cases", 5)):
        urls[name] = url = f"sqlite:///{tmp_path / name}.db"
        monkeypatch.setenv(f"{name.upper()}_DATABASE_URL", url)
        log = EventLog.open(url, service=name)
        for n in range(count):
            log.append(f"{name}-{n % 4}", [NewEvent(f"{name}.noted", {"n": n})])
        log.close()
    return urls


def _tamper(url: str, sql: str) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER event_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER event_log_no_delete")
        conn.exec_driver_sql(sql)
    engine.dispose()


def test_intact_logs_verify_and_their_heads_are_signed(logs, tmp_path, capsys):
    evidence = tmp_path / "evidence.jsonl"
    assert main(["verify", "--sign", str(evidence), "--jobs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("visits: ok, 30 records, head 30 ") and "head signed" in out[0]
    assert out[1].startswith("cases: ok, 5 records, head 5 ")
    assert len(evidence.read_text().splitlines()) == 2
    assert main(["verify", "--checkpoints", str(evidence), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["visits"]["checkpoints_checked"] == report["cases"]["checkpoints_checked"] == 1


def test_an_edited_record_is_named(logs, capsys):
    _tamper(logs["visits"], "UPDATE event_log SET record = replace(record, '\"n\":7', '\"n\":8') "
                            "WHERE position = 8")
    assert main(["verify", "visits"]) == 1
    assert capsys.readouterr().out.strip() == (
        "visits: FAILED at 8: hash does not match the record's contents")


def test_a_cut_tail_is_caught_by_the_signed_head(logs, tmp_path, capsys):
    evidence = tmp_path / "evidence.jsonl"
    assert main(["verify", "cases", "--sign", str(evidence)]) == 0
    _tamper(logs["cases"], "DELETE FROM event_log WHERE position > 3")
    assert main(["verify", "cases"]) == 0, "a bare chain cannot see a missing tail"
    capsys.readouterr()
    assert main(["verify", "cases", "--checkpoints", str(evidence)]) == 1
    assert "FAILED at 4" in capsys.readouterr().out


def test_a_missing_log_is_a_failure_not_a_new_empty_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VISITS_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert main(["verify", "visits"]) == 1
    assert "no log at" in capsys.readouterr().out
    assert not (tmp_path / "none.db").exists()


def test_an_unknown_service_is_refused(logs, capsys):
    assert main(["verify", "visits", "compliance"]) == 2
    assert "no write service named compliance" in capsys.readouterr().err
