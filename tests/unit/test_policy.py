"""The campaign policy file: defaults, where it is read from, and errors that name the key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from shared.campaign.policy import (
    DEFAULT_PATH,
    ENV_VAR,
    Policy,
    PolicyError,
    ThemeMonth,
    load_policy,
)


def write(tmp_path: Path, text: str, name: str = "policy.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_file_holds_the_source_documents_rules(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    policy = load_policy()
    assert DEFAULT_PATH.name == "policy.yml" and DEFAULT_PATH.exists()
    assert policy == Policy(
        timezone="Asia/Shanghai", fixed_day=28, min_days=2, backfill_days=3, theme_months=()
    )


def test_the_environment_variable_names_the_file_and_an_argument_overrides_it(
    tmp_path, monkeypatch
):
    from_env = write(tmp_path, "min_days: 3\n", "env.yml")
    from_arg = write(tmp_path, "min_days: 5\n", "arg.yml")
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert load_policy().min_days == 3
    assert load_policy(from_arg).min_days == 5
    assert load_policy(str(from_arg)).min_days == 5


def test_missing_keys_take_the_defaults_and_an_empty_file_is_all_defaults(tmp_path):
    assert load_policy(write(tmp_path, "backfill_days: 7\n")) == Policy(backfill_days=7)
    assert load_policy(write(tmp_path, "", "empty.yml")) == Policy()


def test_theme_months_override_the_monthly_quota(tmp_path):
    text = (
        'theme_months:\n  "2025-03": {min_days: 4, name: "theme month"}\n'
        "  2025-04: {min_days: 3}\n"
    )
    policy = load_policy(write(tmp_path, text))
    assert policy.theme_months == (
        ThemeMonth("2025-03", 4, "theme month"),
        ThemeMonth("2025-04", 3, ""),
    )
    assert policy.min_days_for("2025-03") == 4
    assert policy.min_days_for("2025-04") == 3
    assert policy.min_days_for("2025-05") == 2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("min_dayz: 2\n", "min_dayz: Unknown field"),
        ("min_days: two\n", "min_days: Not a valid integer"),
        ("min_days: true\n", "min_days: Not a valid integer"),
        ("fixed_day: 32\n", "fixed_day: Must be greater than or equal to 1 and less than or"),
        ("backfill_days: -1\n", "backfill_days: Must be greater than or equal to 0"),
        ("timezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
        ('theme_months: {"2025-13": {min_days: 3}}\n', "theme_months.2025-13.key: not a month"),
        ('theme_months: {"2025-03": {}}\n', "theme_months.2025-03.value.min_days: Missing data"),
        ('theme_months: {"2025-03": {min_days: 3, x: 1}}\n', "2025-03.value.x: Unknown field"),
    ],
)
def test_a_bad_key_is_named_with_the_file(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert named in str(caught.value)


def test_a_file_that_is_not_a_mapping_or_not_yaml_or_absent_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(write(tmp_path, "min_days: [1\n", "broken.yml"))
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yml")


def test_local_dates_follow_the_district_time_zone():
    policy = Policy()
    late_utc = datetime(2024, 3, 27, 16, 30, tzinfo=UTC)  # 00:30 on the 28th in Shanghai
    assert policy.local_date(late_utc) == date(2024, 3, 28)
    assert Policy(timezone="UTC").local_date(late_utc) == date(2024, 3, 27)
    assert policy.start_of(date(2024, 3, 28)) == datetime(2024, 3, 27, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.local_date(datetime(2024, 3, 27, 16, 30))


def test_backfilled_means_more_than_backfill_days_local_days_later():
    policy = Policy(backfill_days=3)
    day = date(2024, 3, 1)
    last_in_time = datetime(2024, 3, 4, 15, 59, tzinfo=UTC)  # 23:59 on the 4th, local
    first_too_late = datetime(2024, 3, 4, 16, 0, tzinfo=UTC)  # 00:00 on the 5th, local
    assert policy.is_backfilled(day, last_in_time) is False
    assert policy.is_backfilled(day, first_too_late) is True
