"""Marshmallow schemas compiled once into plain functions that load valid data fast.

Loading through marshmallow costs ~0.3 ms for a visit (its error bookkeeping, hooks and
field lookups run for every field), and the write path loads twice: the command in, the event
out (check_contract). A compiled loader walks the same fields, runs the same validators and
hooks, and returns the same result; where it is not sure (any error, an unusual field or
option) it gives up (`Unsure`) and the caller asks marshmallow itself, which then gives the
verdict and the error messages. So the fast path only ever accepts what marshmallow accepts,
with the same output (tests/test_compiled.py checks it with hypothesis against marshmallow).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.utils import missing

from shared.kernel.contracts import instance

Load = Callable[[Any], Any]


class Unsure(Exception):
    """The compiled loader cannot vouch for this data: ask marshmallow."""


def fast_load(schema: type[Schema], data: Any, *, postprocess: bool = True) -> Any:
    """`schema().load(data)` for data the compiled loader vouches for; `Unsure` otherwise
    (postprocess=False: without post_load hooks, as `Schema.validate` loads)."""
    try:
        return compiled(schema, postprocess)(data)
    except Unsure:
        raise
    except Exception:  # noqa: BLE001 - any surprise: marshmallow decides, and says why
        raise Unsure from None


@cache
def compiled(schema: type[Schema], postprocess: bool = True) -> Load:
    """The loader of a schema class, built once."""
    return _schema_loader(instance(schema), postprocess)


def _unsure(value: Any) -> Any:
    raise Unsure


def _schema_loader(schema: Schema, postprocess: bool) -> Load:
    hooks = schema._hooks  # noqa: SLF001 - marshmallow's own record of a schema's hooks
    plain = (schema.unknown in (RAISE, EXCLUDE) and not schema.many and not schema.partial
             and not hooks[PRE_LOAD] and not hooks[VALIDATES]
             and all(not many and not kw.get("pass_original")
                     for tag in (VALIDATES_SCHEMA, POST_LOAD) for _, many, kw in hooks[tag])
             and all("." not in (f.attribute or n) for n, f in schema.load_fields.items()))
    if not plain or any(f.dump_only for f in schema.fields.values()):
        return _unsure
    steps = [(f.data_key or name, f.attribute or name, f, _field_loader(f))
             for name, f in schema.load_fields.items()]
    known = frozenset(key for key, *_ in steps)
    strict = schema.unknown == RAISE
    checks = [getattr(schema, name) for name, _, _ in hooks[VALIDATES_SCHEMA]]
    after = [getattr(schema, name) for name, _, _ in hooks[POST_LOAD]] if postprocess else []
    unknown, partial = schema.unknown, schema.partial

    def load(data: Any) -> Any:
        if type(data) is not dict or (strict and not known.issuperset(data)):
            raise Unsure
        out: dict[str, Any] = {}
        for key, attribute, field, step in steps:
            value = data.get(key, missing)
            if value is missing:
                if field.required:
                    raise Unsure
                default = field.load_default
                if default is missing:
                    continue
                out[attribute] = default() if callable(default) else default
            elif value is None:
                if not field.allow_none:
                    raise Unsure
                out[attribute] = None
            else:
                out[attribute] = step(value)
        for check in checks:
            check(out, partial=partial, many=False, unknown=unknown)
        for hook in after:
            out = hook(out, many=False, partial=partial, unknown=unknown)
        return out

    return load


def _field_loader(field: fields.Field) -> Load:
    """A present, non-null value's loader: the field's own `deserialize` unless a faster one
    is known to give the same result."""
    if field.pre_load or field.post_load:
        return _generic(field)
    kind, run = type(field), _validators(field)
    if kind is fields.String:
        return _typed(str, run)
    if kind is fields.Integer:
        return _typed(int, run)
    if (kind is fields.Boolean and True in field.truthy  # type: ignore[attr-defined]
            and False in field.falsy):  # type: ignore[attr-defined]
        return _typed(bool, run)
    if isinstance(field, fields.List) and (kind is fields.List
                                           or getattr(kind, "container", None) is tuple):
        inner = field.inner
        each = _field_loader(inner)
        as_tuple = kind is not fields.List

        def load_list(value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                raise Unsure
            out = [_item(inner, each, item) for item in value]
            result = tuple(out) if as_tuple else out
            run(result)
            return result

        return load_list
    if kind is fields.Nested and _plain_nested(field):  # type: ignore[arg-type]
        nested = _schema_loader(field.schema, postprocess=True)  # type: ignore[attr-defined]

        def load_nested(value: Any) -> Any:
            result = nested(value)
            run(result)
            return result

        return load_nested
    return _generic(field)


def _plain_nested(field: fields.Nested) -> bool:
    """One object of a schema named by class or instance, loaded with its own options."""
    return (not field.many and field.only is None and not field.exclude
            and field.unknown is None and isinstance(field.nested, type | Schema))


def _item(field: fields.Field, step: Load, value: Any) -> Any:
    if value is None:
        if not field.allow_none:
            raise Unsure
        return None
    return step(value)


def _typed(kind: type, run: Callable[[Any], None]) -> Load:
    def load(value: Any) -> Any:
        if type(value) is not kind:
            raise Unsure
        run(value)
        return value

    return load


def _validators(field: fields.Field) -> Callable[[Any], None]:
    validators = tuple(field.validators)

    def run(value: Any) -> None:
        for validator in validators:
            if validator(value) is False:
                raise Unsure

    return run


def _generic(field: fields.Field) -> Load:
    def load(value: Any) -> Any:
        try:
            return field.deserialize(value)
        except ValidationError:
            raise Unsure from None

    return load
