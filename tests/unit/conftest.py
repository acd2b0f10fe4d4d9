"""Fixtures the unit tests share."""

import os

import pytest


@pytest.fixture
def tokens_file(tmp_path, monkeypatch):
    """A token file of the test's own, with the default token lifetime."""
    path = tmp_path / "var" / "tokens.json"
    monkeypatch.setenv("GRASSROOTS_TOKENS", str(path))
    monkeypatch.delenv("GRASSROOTS_TOKEN_DAYS", raising=False)
    umask = os.umask(0o022)  # `grassroots` (cli_main) sets 077 for its process: give it back
    os.umask(umask)
    yield path
    os.umask(umask)
