"""The cases policy: categories with their limits and the deadline rules, from one YAML file
(case_policy.yml beside this module), loaded and validated the way the campaign policy is.

The cases service reads it at start-up, so a category's limits are said once and shown the
same in intake, deadlines and Open311's service list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from shared.campaign.policy import PolicyError
from shared.campaign.workdays import read_yaml
from shared.kernel.errors import flatten

ENV_VAR = "GRASSROOTS_CASE_POLICY"
DEFAULT_PATH = Path(__file__).resolve().with_name("case_policy.yml")
CODE = r"^[a-z][a-z0-9_]{0,39}$"


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    group: str
    description: str
    accept: int  # working days to accept or return
    resolve: int  # working days to resolve


@dataclass(frozen=True)
class CasePolicy:
    categories: tuple[Category, ...]
    approaching_working_days: int = 1
    escalate_after_working_days: int = 3
    max_extension_working_days: int = 20
    receipt_window_working_days: int = 30

    def category(self, code: str) -> Category:
        for category in self.categories:
            if category.code == code:
                return category
        raise KeyError(code)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)


def _days(default: int | None = None) -> fields.Integer:
    kwargs: dict[str, Any] = {"required": True} if default is None else {"load_default": default}
    return fields.Integer(strict=True, validate=validate.Range(0, 60), **kwargs)


class CategorySchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    group = fields.String(required=True, validate=validate.Length(1, 100))
    description = fields.String(required=True, validate=validate.Length(1, 500))
    accept = _days()
    resolve = _days()


class CasePolicySchema(Schema):
    categories = fields.Dict(
        keys=fields.String(validate=validate.Regexp(CODE, error="not a code like `help`")),
        values=fields.Nested(CategorySchema), required=True,
        validate=validate.Length(min=1, error="name at least one category"),
    )
    approaching_working_days = _days(1)
    escalate_after_working_days = _days(3)
    max_extension_working_days = fields.Integer(load_default=20, strict=True,
                                                validate=validate.Range(1, 250))
    receipt_window_working_days = fields.Integer(load_default=30, strict=True,
                                                 validate=validate.Range(0, 250))


def parse_case_policy(raw: Any, source: str = "case policy") -> CasePolicy:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{source}: must be a mapping of keys to values")
    try:
        data = CasePolicySchema().load(dict(raw))
    except ValidationError as exc:
        reasons = [f"{k}: {r}" for k, rs in flatten(exc.messages).items() for r in rs]
        raise PolicyError(f"{source}: " + "; ".join(reasons)) from exc
    for code, category in data["categories"].items():
        if category["accept"] > category["resolve"]:
            raise PolicyError(f"{source}: categories.{code}.accept: is longer than resolve")
    categories = tuple(Category(code=code, **c) for code, c in data.pop("categories").items())
    return CasePolicy(categories=categories, **data)


def load_case_policy(path: str | Path | None = None) -> CasePolicy:
    source = Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH)
    return parse_case_policy(read_yaml(source, "the case policy", PolicyError), str(source))
