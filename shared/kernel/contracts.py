"""What an event schema says about personal data, read from its fields' metadata.

A field marked `{"personal": True}` holds a data subject's personal data; a nested object
whose every field is personal is encrypted as one value. The field marked `{"subject": True}`
holds the subject's id, whose key encrypts them (shared.eventlog). The service layer checks
that every event carries exactly the marks its schema makes, so the schema is the one place
that decides what is personal.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from marshmallow import Schema, fields


@cache
def instance(schema: type[Schema]) -> Schema:
    """One shared instance of a schema class, for validating: building one per event (its
    fields are deep-copied from the class) was most of a contract check's time. Validating
    keeps no state on the instance, so threads may share it."""
    return schema()


def _fields(schema: type[Schema] | Schema) -> dict[str, fields.Field]:
    instance_ = instance(schema) if isinstance(schema, type) else schema
    return {field.data_key or name: field for name, field in instance_.fields.items()}


def personal_paths(schema: type[Schema] | Schema) -> tuple[str, ...]:
    """Dotted paths of the personal values in data of this schema (worked out once per
    schema class: a schema's fields do not change)."""
    if isinstance(schema, type):
        return _personal_paths_of(schema)
    return _personal_paths(schema)


@cache
def _personal_paths_of(schema: type[Schema]) -> tuple[str, ...]:
    return _personal_paths(schema)


def _personal_paths(schema: type[Schema] | Schema) -> tuple[str, ...]:
    paths: list[str] = []
    for key, field in _fields(schema).items():
        if field.metadata.get("personal"):
            paths.append(key)
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            inner = _personal_paths(field.schema)
            if inner and set(inner) == set(_fields(field.schema)):
                paths.append(key)  # wholly personal: one encrypted value
            else:
                paths.extend(f"{key}.{path}" for path in inner)
    return tuple(paths)


def subject_path(schema: type[Schema] | Schema) -> str | None:
    """The dotted path of the field holding the data subject's id, if the schema has one
    (worked out once per schema class)."""
    if isinstance(schema, type):
        return _subject_path_of(schema)
    return _subject_path(schema)


@cache
def _subject_path_of(schema: type[Schema]) -> str | None:
    return _subject_path(schema)


def _subject_path(schema: type[Schema] | Schema) -> str | None:
    for key, field in _fields(schema).items():
        if field.metadata.get("subject"):
            return key
        if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            inner = _subject_path(field.schema)
            if inner is not None:
                return f"{key}.{inner}"
    return None


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path, or None where any step is missing."""
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data
