"""nameko's @http with JSON answers everywhere, down to the HTTP parser.

nameko 2.14 serves @http through eventlet.wsgi and werkzeug, and three layers answer without
asking the application: eventlet's parser (an empty 400 for an oversized header, an empty 414
for a long request line, text for a bad Content-Length), werkzeug's router (an HTML 404/405 for
a path or method no entrypoint takes, e.g. TRACE), and nameko's handler (a text 500). Each is
replaced here by the same `{"errors": {field: [reason]}}` answer the handlers give, so a client
parses one format whatever went wrong. The gateway's entrypoints use `http` from this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from eventlet.wsgi import MAX_HEADER_LINE, MAX_TOTAL_HEADER_SIZE, HeaderLineTooLong, HeadersTooLarge
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from services.gateway.http import error_response
from services.gateway.routes import unmatched
from shared.kernel.errors import SCHEMA_FIELD

logger = logging.getLogger(__name__)
REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}


def unmatched_response(method: str, path: str) -> Response:
    """A JSON 404, or 405 with Allow when the path exists for other methods."""
    status, errors, allowed = unmatched(method, path)
    return error_response(status, errors, {"Allow": ", ".join(allowed)} if allowed else None)


class JsonProtocol(HttpOnlyProtocol):
    """eventlet's HTTP/1.1 parser, answering its own refusals in JSON (and 431, not 400, for
    headers over eventlet's limits: MAX_HEADER_LINE per line, MAX_TOTAL_HEADER_SIZE in all)."""

    def refuse(self, status: int, field: str, reason: str) -> None:
        """Write a complete JSON error response and close the connection after it."""
        body = json.dumps({"errors": {field: [reason]}}).encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        self.wfile.write(head.encode("latin-1") + body)
        self.close_connection = True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The standard library parser's refusals (bad request line or version, more than 100
        headers), which it would answer in HTML."""
        field = "headers" if code == 431 else "request"
        self.refuse(code, field, message or REASONS.get(code, "refused"))

    def _read_request_line(self) -> Any:
        line = super()._read_request_line()
        if len(line) >= self.server.url_length_limit:
            self.refuse(414, "path", f"request line longer than {self.server.url_length_limit}"
                                     " bytes")
            return b""  # eventlet's caller then closes without writing its own 414
        return line

    def parse_request(self) -> bool:
        try:
            if not super().parse_request():
                return False
        except HeaderLineTooLong:
            self.refuse(431, "headers", f"a header line is longer than {MAX_HEADER_LINE} bytes")
            return False
        except HeadersTooLarge:
            self.refuse(431, "headers", f"headers larger than {MAX_TOTAL_HEADER_SIZE} bytes")
            return False
        return self._framing_ok()

    def _framing_ok(self) -> bool:
        """Refuse what eventlet would refuse after parsing, in JSON: a Content-Length that is
        not a non-negative integer, or one sent together with Transfer-Encoding."""
        length = self.headers.get("content-length")
        if length is None:
            return True
        if not length.strip().isdigit():
            self.refuse(400, "content-length", "must be a non-negative integer")
            return False
        if self.headers.get("transfer-encoding") is not None:
            self.refuse(400, "transfer-encoding", "not allowed together with Content-Length")
            return False
        return True


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, with JSON for what no entrypoint takes and for unexpected failures."""

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        # eventlet ends every request body itself (chunked ones at the last chunk, others at
        # Content-Length, 0 without): werkzeug may read a chunked body instead of taking it
        # as empty. http.read_json_object bounds how much is read.
        environ["wsgi.input_terminated"] = True
        request = Request(environ, shallow=True)
        try:
            try:
                provider, values = self.url_map.bind_to_environ(environ).match()
            except HTTPException:  # not found, method not allowed, or a redirect
                response = unmatched_response(request.method, request.path)
            else:
                request.path_values = values  # type: ignore[attr-defined]
                response = provider.handle_request(request)
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            response = error_response(500, {SCHEMA_FIELD: ["internal error"]})
        return response(environ, start_response)


class JsonWebServer(WebServer):
    def get_wsgi_app(self) -> JsonWsgiApp:
        return JsonWsgiApp(self)

    def get_wsgi_server(self, sock: Any, wsgi_app: Any, protocol: type = JsonProtocol,
                        debug: bool = False) -> Any:
        return super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)


class JsonHttp(HttpRequestHandler):
    """nameko's @http on the JSON server; a failure the entrypoint did not answer is JSON."""

    server = JsonWebServer()

    def response_from_exception(self, exc: Exception) -> Response:
        logger.error("entrypoint failed: %r", exc)
        return error_response(500, {SCHEMA_FIELD: ["internal error"]})


http = JsonHttp.decorator
