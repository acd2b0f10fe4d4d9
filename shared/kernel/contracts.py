"""What an event schema says about personal data, read from its fields' metadata.

A field marked `{"personal": True}` holds a data subject's personal data; a nested object
whose every field is personal is encrypted as one value. The field marked `{"subject": True}`
holds the subject's id, whose key encrypts them (shared.eventlog). The service layer checks
that every event carries exactly the marks its schema makes, so the schema is the one place
that decides what is personal.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields


def _fields(schema: type[Schema] | Schema) -> dict[str, fields.Field]:
    instance = schema() if isinstance(schema, type) else schema
    return {field.data_key or name: field for name, field in instance.fields.items()}


def personal_paths(schema: type[Schema] | Schema) -> tuple[str, ...]:
    """Dotted paths of the personal values in data of this schema."""
    paths: list[str] = []
    for key, field in _fields(schema).items():
        if field.metadata.get("personal"):
            paths.append(key)
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            inner = personal_paths(field.schema)
            if inner and set(inner) == set(_fields(field.schema)):
                paths.append(key)  # wholly personal: one encrypted value
            else:
                paths.extend(f"{key}.{path}" for path in inner)
    return tuple(paths)


def subject_path(schema: type[Schema] | Schema) -> str | None:
    """The dotted path of the field holding the data subject's id, if the schema has one."""
    for key, field in _fields(schema).items():
        if field.metadata.get("subject"):
            return key
        if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            inner = subject_path(field.schema)
            if inner is not None:
                return f"{key}.{inner}"
    return None


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path, or None where any step is missing."""
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data
