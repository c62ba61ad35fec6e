"""The notifier's small HTTP surface: GET /health, GET /metrics, POST /alerts/{alert_id}/ack.

The standard library's ThreadingHTTPServer, not a web framework: three fixed routes, one JSON
body, no templates or sessions; a framework would add a dependency (and its CVEs) for nothing we
use. It binds to HEARTBEAT_NOTIFIER_LISTEN (localhost by default). The ack route needs
`Authorization: Bearer <HEARTBEAT_NOTIFIER_TOKEN>`, compared in constant time."""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import ledger
from .database import Database
from .metrics import Metrics

log = logging.getLogger(__name__)
ACK_PATH = re.compile(r"^/alerts/([^/]+)/ack/?$")
MAX_BODY = 64 * 1024


def make_handler(
    db: Database, metrics: Metrics, token: str, healthy: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "heartbeat-notifier"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            quiet = self.path in ("/health", "/metrics")  # polled by supervisors and scrapers
            log.log(logging.DEBUG if quiet else logging.INFO, "%s %s", self.address_string(),
                    format % args)  # fmt: skip

        def _reply(self, status: int, payload: object, content_type: str = "application/json"):
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="heartbeat-notifier"')
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                ok = healthy()
                self._reply(200 if ok else 503, {"status": "ok" if ok else "unhealthy"})
            elif self.path == "/metrics":
                self._reply(200, metrics.render().encode(), "text/plain; version=0.0.4")
            else:
                self._reply(404, {"error": "not found"})

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            given = header[7:] if header.startswith("Bearer ") else ""
            # An unset token refuses everyone rather than accepting an empty one.
            return bool(token) and hmac.compare_digest(given.encode(), token.encode())

        def do_POST(self) -> None:
            match = ACK_PATH.match(self.path)
            if not match:
                self._reply(404, {"error": "not found"})
                return
            if not self._authorised():
                self._reply(401, {"error": "a valid bearer token is required"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": "body too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                by, note = str(body.get("by", "")), body.get("note")
                with db.cursor() as cur:
                    ack = ledger.acknowledge(cur, match.group(1), by, None if note is None
                                             else str(note))  # fmt: skip
            except (ValueError, AttributeError) as error:
                self._reply(400, {"error": str(error)})
                return
            self._reply(201 if ack.new else 200, ack.as_json())

    return Handler


def serve(address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; the caller shuts it down."""
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
