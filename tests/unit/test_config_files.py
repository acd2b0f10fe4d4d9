"""The holidays file and the case policy are read by one function (workdays.read_yaml): a file
that cannot be read or is not YAML is refused with its own error, naming the file and what it
was meant to be, before anything parses it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.cases.case_policy import load_case_policy
from shared.campaign.policy import PolicyError
from shared.campaign.workdays import CalendarError, load_calendar

LOADERS = [
    pytest.param(load_calendar, CalendarError, "the holidays file", id="holidays"),
    pytest.param(load_case_policy, PolicyError, "the case policy", id="case-policy"),
]


@pytest.mark.parametrize(("load", "error", "what"), LOADERS)
def test_a_missing_file_is_named_with_what_it_should_hold(
        tmp_path: Path, load: Callable[[Path], Any], error: type[ValueError], what: str):
    missing = tmp_path / "absent.yml"
    with pytest.raises(error) as raised:
        load(missing)
    assert str(raised.value).startswith(f"{missing}: cannot read {what} (")


@pytest.mark.parametrize(("load", "error", "what"), LOADERS)
def test_a_file_that_is_not_yaml_is_named(
        tmp_path: Path, load: Callable[[Path], Any], error: type[ValueError], what: str):
    broken = tmp_path / "broken.yml"
    broken.write_text("years: [2025\n", encoding="utf-8")
    with pytest.raises(error) as raised:
        load(broken)
    assert str(raised.value).startswith(f"{broken}: not valid YAML (")
