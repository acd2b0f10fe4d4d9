"""The campaign policy: the numbers the rules use, read from one YAML file by every service.

Keeping them in one documented file (not in each service's config) means the visits service
flags backfilled visits with the same threshold the compliance view assumes, and a theme month
is declared once. The file is validated on load; a bad key is named in the error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from shared.kernel.errors import flatten

ENV_VAR = "GRASSROOTS_POLICY"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "policy.yml"
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class PolicyError(ValueError):
    """The policy file is missing, unreadable or has a bad key."""


@dataclass(frozen=True)
class ThemeMonth:
    """A month with its own quota, e.g. the province's theme month."""

    month: str
    min_days: int
    name: str = ""


@dataclass(frozen=True)
class Policy:
    """Validated policy values; defaults are the ones the source document sets."""

    timezone: str = "Asia/Shanghai"
    fixed_day: int = 28
    min_days: int = 2
    backfill_days: int = 3
    reminder_lead_days: int = 3
    theme_months: tuple[ThemeMonth, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def theme_month(self, month: str) -> ThemeMonth | None:
        return next((t for t in self.theme_months if t.month == month), None)

    def min_days_for(self, month: str) -> int:
        """The month's quota of grassroots days: the theme month's, else the general one."""
        theme = self.theme_month(month)
        return theme.min_days if theme else self.min_days

    def local_date(self, moment: datetime) -> date:
        """The district's calendar date at an aware instant."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} must be timezone-aware")
        return moment.astimezone(self.tz).date()

    def start_of(self, day: date) -> datetime:
        """Local midnight of `day` as an aware instant (the business time of a dated fact)."""
        return datetime.combine(day, time(), tzinfo=self.tz)

    def is_backfilled(self, day: date, recorded_at: datetime) -> bool:
        """Recorded more than `backfill_days` local days after the date it is about."""
        return (self.local_date(recorded_at) - day).days > self.backfill_days


def _check_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {value!r}") from exc


class ThemeMonthSchema(Schema):
    min_days = fields.Integer(required=True, strict=True, validate=validate.Range(0, 31))
    name = fields.String(load_default="")


class PolicySchema(Schema):
    """The file's shape; every key is optional and defaults to the source document's value."""

    timezone = fields.String(load_default="Asia/Shanghai", validate=_check_timezone)
    fixed_day = fields.Integer(load_default=28, strict=True, validate=validate.Range(1, 31))
    min_days = fields.Integer(load_default=2, strict=True, validate=validate.Range(0, 31))
    backfill_days = fields.Integer(load_default=3, strict=True, validate=validate.Range(0, 366))
    reminder_lead_days = fields.Integer(load_default=3, strict=True,
                                        validate=validate.Range(0, 27))
    theme_months = fields.Dict(
        keys=fields.String(validate=validate.Regexp(MONTH_PATTERN, error="not a month YYYY-MM")),
        values=fields.Nested(ThemeMonthSchema),
        load_default=dict,
    )


def _flatten(messages: Any) -> list[str]:
    """marshmallow's nested error map as `key.path: reason` lines."""
    return [f"{field}: {reason}" for field, reasons in flatten(messages).items()
            for reason in reasons]


def parse_policy(raw: Any, source: str = "policy") -> Policy:
    """A Policy from already-parsed YAML (a mapping, or None for an empty file)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{source}: must be a mapping of keys to values")
    try:
        data = PolicySchema().load(dict(raw))
    except ValidationError as exc:
        raise PolicyError(f"{source}: " + "; ".join(_flatten(exc.messages))) from exc
    themes = tuple(
        ThemeMonth(month=k, min_days=v["min_days"], name=v["name"])
        for k, v in sorted(data.pop("theme_months").items())
    )
    return Policy(**data, theme_months=themes)


def policy_path(path: str | Path | None = None) -> Path:
    """The file to read: the argument, else $GRASSROOTS_POLICY, else the repo's policy.yml."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate the policy file; PolicyError names the file and the bad key."""
    source = policy_path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read policy file ({exc.strerror})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML ({exc})") from exc
    return parse_policy(raw, str(source))
