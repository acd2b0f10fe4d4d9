"""Files under var/ are private (issue 7, section 3): umask 077 in every process the project
starts, modes of older files fixed, and residents' keys kept apart from the log by default."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from shared.eventlog import Signer
from shared.runtime.config import ROOT, load_config
from shared.runtime.private import tighten
from shared.tools.platform import Platform


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    return {**env, "GRASSROOTS_VAR": str(tmp_path / "var"), **extra}


def test_tighten_takes_group_and_other_bits_off_everything_under_var(tmp_path):
    var = tmp_path / "var"
    (var / "log").mkdir(parents=True)
    os.chmod(var, 0o755)
    os.chmod(var / "log", 0o775)
    made = {var / "visits.db": 0o644, var / "visits.db-wal": 0o644, var / "visits.db-shm": 0o666,
            var / "log" / "visits.log": 0o644, var / "cookie": 0o400, var / "tool": 0o755}
    for path, old in made.items():
        path.write_text("x")
        os.chmod(path, old)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not ours to change")
    os.chmod(outside, 0o644)
    (var / "link").symlink_to(outside)

    changed = tighten(var)
    assert mode(var) == 0o700 and mode(var / "log") == 0o700
    assert {p: mode(p) for p in made} == {
        var / "visits.db": 0o600, var / "visits.db-wal": 0o600, var / "visits.db-shm": 0o600,
        var / "log" / "visits.log": 0o600, var / "cookie": 0o400, var / "tool": 0o700}
    assert mode(outside) == 0o644, "links are not followed"
    assert var / "cookie" not in changed and len(changed) == 7
    assert tighten(var) == [] and tighten(tmp_path / "missing") == []


def test_the_grassroots_command_makes_private_files(tmp_path):
    tokens = tmp_path / "var" / "tokens.json"
    done = subprocess.run(
        [sys.executable, "-m", "shared.tools.cli", "token", "create", "--role", "operator"],
        cwd=ROOT, env=run_env(tmp_path, GRASSROOTS_TOKENS=str(tokens)),
        capture_output=True, text=True, check=True,
    )
    assert done.stdout.startswith("gr_")
    assert mode(tokens.parent) == 0o700
    assert {p.name: mode(p) for p in tokens.parent.iterdir()} == {
        "tokens.json": 0o600, "tokens.json.lock": 0o600}


def test_the_service_runner_sets_the_umask_before_loading_a_service(tmp_path):
    """`shared.runtime.serve` imports the service module before it connects to the broker: a module
    that makes a file and exits shows the umask the service would run with."""
    (tmp_path / "probe.py").write_text(
        "import os, sqlite3\n"
        "os.mkdir('made')\n"
        "db = sqlite3.connect('made/x.db'); db.execute('pragma journal_mode=wal')\n"
        "db.execute('create table t (a)'); db.commit()\n"
        "os._exit(0)\n"
    )
    config = tmp_path / "config.yml"
    config.write_text("AMQP_URI: amqp://nobody@127.0.0.1:1//\n")
    env = run_env(tmp_path, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}")
    subprocess.run([sys.executable, "-m", "shared.runtime.serve", "run", "--config", str(config),
                    "probe"],
                   cwd=tmp_path, env=env, capture_output=True, check=True, timeout=60)
    made = tmp_path / "made"
    assert mode(made) == 0o700
    assert {p.name: mode(p) for p in made.iterdir()} == {
        "x.db": 0o600, "x.db-wal": 0o600, "x.db-shm": 0o600}


def test_residents_keys_are_kept_apart_from_the_log_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("VISITS_KEYS_DATABASE_URL", raising=False)
    monkeypatch.delenv("VISITS_DATABASE_URL", raising=False)
    monkeypatch.setenv("GRASSROOTS_SIGNING_KEY", Signer.generate())  # else one is made in var/
    config = load_config("visits")
    assert config["KEYS_DATABASE_URL"] == "sqlite:///var/keys/visits.db"
    assert config["KEYS_DATABASE_URL"] != config["DATABASE_URL"]
    env = Platform(var=tmp_path).env()
    assert env["VISITS_KEYS_DATABASE_URL"] == f"sqlite:///{tmp_path}/keys/visits.db"
    assert env["VISITS_DATABASE_URL"] == f"sqlite:///{tmp_path}/visits.db"
