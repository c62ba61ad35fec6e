"""Real receivers for the notifier's tests and benchmark: an HTTP server that records every
request and answers as scripted per path, and an SMTP server (aiosmtpd) that keeps every message."""

from __future__ import annotations

import email
import json
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.support.sockets import free_port

BLOCK = "block"  # hold the request until `release()`, then answer 200


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def json(self) -> dict[str, object]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each path by its script (statuses in turn, the last one repeated; (429, "2")
    sends Retry-After: 2; BLOCK holds the request). Default: 200."""

    scripts: dict[str, list[object]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body, time.time()))
                action = receiver._next_action(self.path)
                if action == BLOCK:
                    receiver.released.wait(300)
                    action = 200
                status, retry_after = action if isinstance(action, tuple) else (action, None)
                self.send_response(int(status))
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def _next_action(self, path: str) -> object:
        with self._lock:
            script = self.scripts.get(path) or [200]
            index = self._served.get(path, 0)
            self._served[path] = index + 1
            return script[min(index, len(script) - 1)]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in list(self.received) if r.path == path]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class _Collect:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class SmtpReceiver:
    """A real SMTP server on localhost (no TLS: HEARTBEAT_SMTP_TLS=none)."""

    def __init__(self) -> None:
        self.handler = _Collect()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
