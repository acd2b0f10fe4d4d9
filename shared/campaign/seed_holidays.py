"""Fill a year of the holidays file from the `chinesecalendar` package (PyPI).

    python -m shared.campaign.seed_holidays 2026 [--file PATH]

The package follows the State Council's yearly notice; once it is out, upgrade the package
(`pip install -U chinesecalendar`), run this for the new year, check the diff against the
notice and commit the file. Years already in the file are kept as they are unless named;
a year the package does not know yet is refused (edit the file by hand from the notice).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import yaml

from shared.campaign.workdays import calendar_path, parse_calendar

HEADER = """\
# Public holidays and make-up working days (调休), per year: what operators update each year
# when the State Council's notice is out (shared/campaign/workdays.py says how they are used).
# `holidays`: every day off of a holiday, weekends inside it included; `working_days`: the
# weekend days made working days. A year not listed counts weekends only (with a warning).
# Seeded with `python -m shared.campaign.seed_holidays YEAR` from the chinesecalendar package.
"""


def year_from_package(year: int) -> dict[str, dict[dt.date, str]]:
    """The year's days off and make-up working days as the package knows them."""
    from chinese_calendar import constants

    holidays = {d: str(n) for d, n in constants.holidays.items() if d.year == year}
    working = {d: str(n) for d, n in constants.workdays.items() if d.year == year}
    if not holidays:
        raise SystemExit(f"chinesecalendar {_version()} knows no holidays of {year}: upgrade it "
                         "or enter the year from the State Council's notice by hand")
    return {"holidays": dict(sorted(holidays.items())),
            "working_days": dict(sorted(working.items()))}


def _version() -> str:
    import chinese_calendar

    return str(getattr(chinese_calendar, "__version__", "?"))


def render(years: dict[int, Any]) -> str:
    """The file's text: the header, then the years in order (YAML writes dates plain)."""
    body = yaml.safe_dump({"years": {y: years[y] for y in sorted(years)}},
                          allow_unicode=True, sort_keys=False, default_flow_style=False)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("years", type=int, nargs="+", help="the years to (re)fill")
    parser.add_argument("--file", help="the holidays file (default: $GRASSROOTS_HOLIDAYS or "
                                       "shared/campaign/holidays.yml)")
    args = parser.parse_args(argv)
    path = calendar_path(args.file)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    years: dict[int, Any] = dict((raw or {}).get("years") or {})
    for year in args.years:
        years[year] = year_from_package(year)
    text = render({y: _plain(v) for y, v in years.items()})
    parse_calendar(yaml.safe_load(text), str(path))  # never write a file that does not load
    path.write_text(text, encoding="utf-8")
    print(f"{path.name}: wrote {', '.join(map(str, args.years))} "
          f"(chinesecalendar {_version()})")
    return 0


def _plain(entry: dict[str, Any]) -> dict[str, dict[dt.date, str]]:
    """An entry read back from YAML in the form `render` writes (dates as dates)."""
    return {key: {dt.date.fromisoformat(str(d)): str(n)
                  for d, n in sorted((entry.get(key) or {}).items(), key=lambda i: str(i[0]))}
            for key in ("holidays", "working_days")}


if __name__ == "__main__":
    sys.exit(main())
