"""Marshmallow schemas compiled once into plain functions that load valid data fast.

Loading through marshmallow costs ~0.3 ms for a visit (its error bookkeeping, hooks and
field lookups run for every field), and the write path loads twice: the command in, the event
out (check_contract). A compiled loader walks the same fields, runs the same validators and
hooks, and returns the same result; where it is not sure (any error, an unusual field or
option) it gives up (`Unsure`) and the caller asks marshmallow itself, which then gives the
verdict and the error messages. So the fast path only ever accepts what marshmallow accepts,
with the same output (tests/unit/test_compiled.py checks it with hypothesis against marshmallow).

Each schema becomes the source text of one Python function, compiled with `exec`: its fields'
type checks, lists and the usual validators (`Length`, `OneOf`, `Regexp`, `Range`, written out
with marshmallow's own comparisons) run inline. A loader built of one closure per field and
validator spent most of its time calling them: the two loads of a visit took about 50 us of a
command's ~550; generated code takes about 25 us.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate
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
    return _Writer().schema(instance(schema), postprocess)


def _unsure(value: Any) -> Any:
    raise Unsure


def _plain(schema: Schema) -> bool:
    """Options and hooks the generated code reproduces; anything else is marshmallow's."""
    hooks = schema._hooks  # noqa: SLF001 - marshmallow's own record of a schema's hooks
    return (schema.unknown in (RAISE, EXCLUDE) and not schema.many and not schema.partial
            and not hooks[PRE_LOAD] and not hooks[VALIDATES]
            and all(not many and not kw.get("pass_original")
                    for tag in (VALIDATES_SCHEMA, POST_LOAD) for _, many, kw in hooks[tag])
            and all("." not in (f.attribute or n) for n, f in schema.load_fields.items())
            and not any(f.dump_only for f in schema.fields.values()))


class _Writer:
    """Writes the source of a schema's loader; values it cannot spell go in `env`."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {"Unsure": Unsure, "MISSING": missing}
        self._names = itertools.count()

    def name(self, value: Any) -> str:
        """A global name for `value` in the generated code."""
        key = f"c{next(self._names)}"
        self.env[key] = value
        return key

    def schema(self, schema: Schema, postprocess: bool) -> Load:
        if not _plain(schema):
            return _unsure
        hooks = schema._hooks  # noqa: SLF001
        kw = f"partial={schema.partial!r}, many=False, unknown={schema.unknown!r}"
        lines = ["def load(data):", "    if type(data) is not dict: raise Unsure"]
        if schema.unknown == RAISE:
            known = frozenset(f.data_key or n for n, f in schema.load_fields.items())
            lines.append(f"    if not {self.name(known)}.issuperset(data): raise Unsure")
        lines.append("    out = {}")
        for name, field in schema.load_fields.items():
            lines += self._member(field, field.data_key or name, field.attribute or name)
        for hook, _, _ in hooks[VALIDATES_SCHEMA]:
            lines.append(f"    {self.name(getattr(schema, hook))}(out, {kw})")
        for hook, _, _ in hooks[POST_LOAD] if postprocess else ():
            lines.append(f"    out = {self.name(getattr(schema, hook))}(out, {kw})")
        lines.append("    return out")
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), f"<loader of {type(schema).__name__}>", "exec"),  # noqa: S102
             self.env, namespace)
        return namespace["load"]

    def _member(self, field: fields.Field, key: str, attribute: str) -> list[str]:
        """Lines that set out[attribute] from data[key] as marshmallow would, or give up."""
        lines = [f"    v = data.get({key!r}, MISSING)", "    if v is MISSING:"]
        default = field.load_default
        if field.required:
            lines.append("        raise Unsure")
        elif default is missing:
            lines.append("        pass")
        else:
            made = f"{self.name(default)}()" if callable(default) else self.name(default)
            lines.append(f"        out[{attribute!r}] = {made}")
        lines.append("    elif v is None:")
        lines.append(f"        out[{attribute!r}] = None" if field.allow_none
                     else "        raise Unsure")
        lines.append("    else:")
        lines += self._value(field, "v", "r", "        ")
        lines.append(f"        out[{attribute!r}] = r")
        return lines

    def _value(self, field: fields.Field, src: str, dst: str, pad: str) -> list[str]:
        """Lines that load the present, non-null value `src` into `dst`."""
        kind = type(field)
        simple = {fields.String: "str", fields.Integer: "int"}.get(kind)
        if (kind is fields.Boolean and True in field.truthy  # type: ignore[attr-defined]
                and False in field.falsy):  # type: ignore[attr-defined]
            simple = "bool"
        if field.pre_load or field.post_load:
            return self._generic(field, src, dst, pad)
        if simple is not None:
            lines = [f"{pad}if type({src}) is not {simple}: raise Unsure", f"{pad}{dst} = {src}"]
        elif kind is fields.Date and field.format in ("iso", "iso8601"):  # type: ignore[attr-defined]
            lines = [f"{pad}if type({src}) is not str: raise Unsure",  # what Date does with text
                     f"{pad}{dst} = {self.name(dt.date.fromisoformat)}({src})"]
        elif isinstance(field, fields.List) and (kind is fields.List
                                                 or getattr(kind, "container", None) is tuple):
            lines = self._list(field, src, dst, pad)
        elif kind is fields.Nested and _plain_nested(field):  # type: ignore[arg-type]
            nested = self.name(self.schema(field.schema, True))  # type: ignore[attr-defined]
            lines = [f"{pad}{dst} = {nested}({src})"]
        else:
            return self._generic(field, src, dst, pad)
        for validator in field.validators:
            lines += [pad + line for line in self._check(validator, dst)]
        return lines

    def _generic(self, field: fields.Field, src: str, dst: str, pad: str) -> list[str]:
        """The field's own `deserialize` (which runs its validators)."""
        return [f"{pad}{dst} = {self.name(field)}.deserialize({src})"]

    def _list(self, field: fields.List, src: str, dst: str, pad: str) -> list[str]:
        item, each = f"{src}i", f"{dst}i"
        inner = field.inner
        lines = [f"{pad}if type({src}) is not list and type({src}) is not tuple: raise Unsure",
                 f"{pad}{dst} = []", f"{pad}for {item} in {src}:",
                 f"{pad}    if {item} is None:"]
        lines.append(f"{pad}        {dst}.append(None)" if inner.allow_none
                     else f"{pad}        raise Unsure")
        lines.append(f"{pad}    else:")
        lines += self._value(inner, item, each, pad + "        ")
        lines.append(f"{pad}        {dst}.append({each})")
        if type(field) is not fields.List:
            lines.append(f"{pad}{dst} = tuple({dst})")
        return lines

    def _check(self, validator: Any, value: str) -> list[str]:
        """A validator as an inline test with marshmallow's own comparisons, or a call."""
        kind = type(validator)
        if kind is validate.Length:
            if validator.equal is not None:
                return [f"if len({value}) != {validator.equal!r}: raise Unsure"]
            low = f"len({value}) < {validator.min!r}" if validator.min is not None else None
            high = f"len({value}) > {validator.max!r}" if validator.max is not None else None
            return [f"if {test}: raise Unsure" for test in (low, high) if test]
        if kind is validate.OneOf:
            choices = validator.choices
            if all(type(c) is str for c in choices):
                choices = frozenset(choices)  # the same answer for any hashable value
            return [f"if {value} not in {self.name(choices)}: raise Unsure"]
        if kind is validate.Regexp:
            return [f"if {self.name(validator.regex.match)}({value}) is None: raise Unsure"]
        if kind is validate.Range:
            tests = []
            if validator.min is not None:
                op = "<" if validator.min_inclusive else "<="
                tests.append(f"{value} {op} {self.name(validator.min)}")
            if validator.max is not None:
                op = ">" if validator.max_inclusive else ">="
                tests.append(f"{value} {op} {self.name(validator.max)}")
            return [f"if {test}: raise Unsure" for test in tests]
        return [f"if {self.name(validator)}({value}) is False: raise Unsure"]


def _plain_nested(field: fields.Nested) -> bool:
    """One object of a schema named by class or instance, loaded with its own options."""
    return (not field.many and field.only is None and not field.exclude
            and field.unknown is None and isinstance(field.nested, type | Schema))
