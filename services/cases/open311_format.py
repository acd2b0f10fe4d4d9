"""Open311 documents as the spec writes them: JSON, or XML (the spec's required format) with
its root and item element names, and errors in its `code`/`description` shape in both.

Pure: a document in, an `Answer` (status, content type, UTF-8 body) out. XML is built with
xml.etree, which escapes markup; characters XML 1.0 cannot hold at all (most C0 controls) are
replaced with U+FFFD, so any text a case holds still gives a document that parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from services.cases.open311_schemas import ERRORS
from shared.kernel.errors import SCHEMA_FIELD, DomainError, flatten

CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CHILDREN = {"endpoints": "endpoint", "formats": "format"}  # discovery's nested lists
# Characters XML 1.0 cannot carry, and lone surrogates (which UTF-8 cannot): shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Document:
    """A root element over a list of items (`item` names them), or over one mapping."""

    root: str
    item: str | None
    content: list[dict[str, Any]] | dict[str, Any]


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class Open311Error(Exception):
    """A refusal in the spec's shape: the HTTP status, and one description per problem."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__(status, *descriptions)
        self.status = status
        self.descriptions = descriptions

    def document(self) -> Document:
        return Document(ERRORS.root, ERRORS.item, [{"code": self.status, "description": text}
                                                  for text in self.descriptions])


def _described(messages: Mapping[str, list[str]]) -> list[str]:
    return [reason if name == SCHEMA_FIELD else f"{name}: {reason}"
            for name, reasons in messages.items() for reason in reasons]


def invalid(exc: ValidationError) -> Open311Error:
    """Bad parameters: 400, one error per field and reason."""
    return Open311Error(400, *_described(flatten(exc.messages)))


def from_domain(exc: DomainError) -> Open311Error:
    """A decision's refusal (400, 403, 404, 409, 422) keeps its status and its reasons."""
    return Open311Error(exc.http_status, *_described(flatten(exc.errors())))


def split_format(name: str) -> tuple[str, str]:
    """`requests.json` -> ("requests", "json"); a format the spec does not offer is a 404."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in CONTENT_TYPES:
        raise Open311Error(404, "formats offered: .json and .xml")
    return stem, suffix


def render(document: Document, fmt: str, status: int = 200) -> Answer:
    if fmt == "json":
        # a lone surrogate echoed back in a refusal: replaced, not a crash
        body = json.dumps(document.content, ensure_ascii=False).encode("utf-8", "replace")
    else:
        body = XML_DECLARATION + ET.tostring(_xml(document), encoding="unicode").encode()
    return Answer(status, CONTENT_TYPES[fmt], body)


def render_error(error: Open311Error, fmt: str) -> Answer:
    return render(error.document(), fmt, error.status)


def _xml(document: Document) -> ET.Element:
    root = ET.Element(document.root)
    if isinstance(document.content, dict):
        _fill(root, document.content)
    else:
        for item in document.content:
            _fill(ET.SubElement(root, document.item or "item"), item)
    return root


def _fill(parent: ET.Element, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        element = ET.SubElement(parent, name)
        if isinstance(value, list):
            for member in value:
                child = ET.SubElement(element, CHILDREN[name])
                if isinstance(member, dict):
                    _fill(child, member)
                else:
                    child.text = _text(member)
        else:
            element.text = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))
