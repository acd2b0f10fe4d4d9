"""What crosses the broker: RPC bodies are plain JSON written and read by msgspec (kombu's own
codec looked for its type markers in every object), events CloudEvents JSON."""

from __future__ import annotations

import json

import kombu.serialization
import nameko.serialization

from shared.runtime import wire
from shared.runtime.config import load_config


def test_every_service_and_proxy_writes_and_reads_rpc_json_with_msgspec():
    for service in ("visits", "compliance", "gateway"):
        kombu.serialization.register("json", json.dumps, json.loads,
                                     content_type="application/json")  # kombu's kind
        serializer, accept = nameko.serialization.setup(load_config(service))
        assert (serializer, accept) == ("json", ["json", wire.SERIALIZER])
        assert kombu.serialization.registry._encoders["json"].encoder is wire.encode
        assert kombu.serialization.registry._decoders["application/json"] is wire.decode
    wire.register()  # standalone proxies (CLI, views reading logs) register it themselves
    assert kombu.serialization.registry._encoders["json"].encoder is wire.encode


def test_an_rpc_body_is_the_same_json_either_way():
    body = {"args": [], "kwargs": {"after": 7, "types": ["visit.recorded"], "until": None,
                                   "text": "走访农户 \u2028 \"quoted\""}}
    wire.register()
    content_type, encoding, payload = kombu.serialization.dumps(body, serializer="json")
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert json.loads(payload) == body
    assert kombu.serialization.loads(payload, content_type, encoding) == body
    assert kombu.serialization.loads(json.dumps(body), content_type, encoding) == body
