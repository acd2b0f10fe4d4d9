"""How events travel: CloudEvents 1.0 JSON (structured mode) on each service's topic exchange.

The content type is `application/cloudevents+json`; it is registered with kombu as the
`cloudevents` serializer so nameko consumers accept it (config: `ACCEPT: [json, cloudevents]`).
"""

from __future__ import annotations

from typing import Any

import kombu.serialization
import msgspec

CONTENT_TYPE = "application/cloudevents+json"
SERIALIZER = "cloudevents"


def encode(event: Any) -> bytes:
    return msgspec.json.encode(event)


def decode(body: bytes | str) -> Any:
    return msgspec.json.decode(body)


def register() -> None:
    """Make kombu (and so nameko) able to read and write CloudEvents JSON."""
    kombu.serialization.register(
        SERIALIZER, encode, decode, content_type=CONTENT_TYPE, content_encoding="utf-8"
    )


def exchange_name(service: str) -> str:
    """The topic exchange a service's events are published on (nameko's convention)."""
    return f"{service}.events"


register()
