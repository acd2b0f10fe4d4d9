"""How events and calls travel: CloudEvents 1.0 JSON (structured mode) on each service's topic
exchange, plain JSON for RPC.

The events' content type is `application/cloudevents+json`; it is registered with kombu as
the `cloudevents` serializer so nameko consumers accept it (config: `ACCEPT: [json,
cloudevents]`). RPC bodies are `json`, read and written here by msgspec in place of kombu's
codec: what crosses is only ever plain JSON (the schemas' dumped data), and kombu's decoder
passes every object through a Python hook looking for its own type markers, which with its
encoder cost a view's rebuild over RPC three quarters of its time in the two services (a
page of 2,000 records with diaries). msgspec reads and writes the same JSON several times
faster. (kombu would revive a datetime it was given; nothing here sends one.)
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
    """Make kombu (and so nameko) read and write CloudEvents JSON, and plain JSON, here (the
    services' configuration says the same: services/base.yml)."""
    kombu.serialization.register(
        SERIALIZER, encode, decode, content_type=CONTENT_TYPE, content_encoding="utf-8"
    )
    kombu.serialization.register(
        "json", encode, decode, content_type="application/json", content_encoding="utf-8"
    )


def exchange_name(service: str) -> str:
    """The topic exchange a service's events are published on (nameko's convention)."""
    return f"{service}.events"


register()
