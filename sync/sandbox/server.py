"""The sandbox's HTTP server: one port, a path prefix per platform, control under /_sandbox/.

/<platform slug>/...                 each registered platform's contract
GET  /_sandbox/store[/<platform>]   what each platform holds now
GET  /_sandbox/contact/<platform>/<external id>   that contact in neutral words, or 404
POST /_sandbox/contact/<platform>/<external id>   change it on the platform's side:
                                    {"first_name"|"last_name"|"email"|"text_field": …,
                                     "raw": {<the platform's own keys>: …}}; 404 if not held
DELETE /_sandbox/contact/<platform>/<external id> remove it on the platform's side
GET  /_sandbox/stats                request counts by platform and status
GET  /_sandbox/log[?platform=…]     every request: time, platform, method, path, status
GET  /_sandbox/traffic[?platform=…] per platform: requests, max_per_second (the most that
                                    arrived in any one second), rate_limited (429s answered),
                                    max_in_flight (the most answered at once)
DELETE /_sandbox/traffic            count traffic afresh (stores, faults and limits stay)
POST /_sandbox/faults               {"platform": <slug> | "*", <fault>: <value>, …}
POST /_sandbox/rate-limit           {"platform": <slug>, "limit": 10 | null}
POST /_sandbox/reset                empty every store, clear faults, limits and counts
POST /_sandbox/webhook              {"platform": <slug>, …}: register a webhook URL by hand
POST /_sandbox/notify               {"platform": <slug>, "action": …}: act and notify
POST /_sandbox/redeliver            {"platform": <slug>}: send its last notifications again
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from sync.sandbox.core import BadRequest, CloseConnection, Sandbox, SandboxRequest

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the platforms serve it
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "ContactSyncSandbox/1.0"
    sandbox: Sandbox

    def log_message(self, format, *args):
        logger.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        prefix, _, rest = parts.path.lstrip("/").partition("/")
        if prefix == "_sandbox":
            return self._control(rest, parts.query, body)
        if prefix not in self.sandbox.emulators:
            return self._send(404, {"error": f"no platform at /{prefix}/"})
        request = SandboxRequest(
            method=self.command,
            path="/" + rest,
            query=SandboxRequest.parse_query(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_path=self.path,
        )
        try:
            response = self.sandbox.handle(prefix, request)
        except CloseConnection:
            self.close_connection = True
            return
        payload, content_type = response.encoded()
        self._send(response.status, payload, content_type, response.headers)

    def _control(self, rest, query, body):
        sandbox = self.sandbox
        try:
            data = json.loads(body) if body else {}
            if self.command == "GET" and rest.startswith("store"):
                platform = rest.partition("/")[2] or None
                return self._send(200, sandbox.store(platform))
            if self.command == "GET" and rest.startswith("consent/"):
                _, platform, external_id = rest.split("/", 2)
                if platform not in sandbox.emulators:
                    raise BadRequest(f"unknown platform {platform!r}")
                view = sandbox.consent_view(platform, unquote(external_id))
                if view is None:
                    return self._send(404, {"error": f"{platform} holds no {external_id!r}"})
                return self._send(200, view)
            if self.command == "GET" and rest.startswith("contact/"):
                _, platform, external_id = rest.split("/", 2)
                view = sandbox.contact_view(platform, unquote(external_id))
                if view is None:
                    return self._send(404, {"error": f"{platform} holds no {external_id!r}"})
                return self._send(200, view)
            if self.command in ("POST", "DELETE") and rest.startswith("contact/"):
                _, platform, external_id = rest.split("/", 2)
                if platform not in sandbox.emulators:
                    raise BadRequest(f"unknown platform {platform!r}")
                external_id = unquote(external_id)
                if self.command == "POST":
                    view = sandbox.edit_contact(platform, external_id, data)
                else:
                    view = (
                        {"removed": True} if sandbox.remove_contact(platform, external_id) else None
                    )
                if view is None:
                    return self._send(404, {"error": f"{platform} holds no {external_id!r}"})
                return self._send(200, view)
            if self.command == "GET" and rest == "stats":
                return self._send(200, sandbox.stats())
            if self.command == "GET" and rest == "traffic":
                platform = SandboxRequest.parse_query(query).get("platform", [None])[0]
                return self._send(200, sandbox.traffic_report(platform))
            if self.command == "DELETE" and rest == "traffic":
                sandbox.traffic_reset()
                return self._send(200, {"ok": True})
            if self.command == "GET" and rest == "log":
                platform = SandboxRequest.parse_query(query).get("platform", [None])[0]
                return self._send(200, sandbox.request_log(platform))
            if self.command == "POST" and rest == "faults":
                platform = data.pop("platform", "*")
                return self._send(200, sandbox.set_faults(platform, data))
            if self.command == "POST" and rest == "rate-limit":
                sandbox.set_rate_limit(data["platform"], data.get("limit"))
                return self._send(200, {"ok": True})
            if self.command == "POST" and rest == "webhook":
                return self._send(200, sandbox.register_webhook(data.pop("platform"), data))
            if self.command == "POST" and rest == "notify":
                host, port = self.server.server_address[:2]
                base_url = f"http://{host}:{port}"
                return self._send(200, sandbox.notify(data.pop("platform"), data, base_url))
            if self.command == "POST" and rest == "redeliver":
                return self._send(200, sandbox.redeliver(data["platform"]))
            if self.command == "POST" and rest == "reset":
                sandbox.reset()
                return self._send(200, {"ok": True})
        except (BadRequest, KeyError, ValueError) as err:
            return self._send(400, {"error": str(err)})
        return self._send(404, {"error": f"no control endpoint {self.command} /_sandbox/{rest}"})

    def _send(self, status, payload, content_type="application/json", headers=None):
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    # Connections waiting to be accepted, as a platform's server keeps room for hundreds.
    # socketserver's default of 5 made the kernel drop the connections beyond it when two
    # workers' lanes opened theirs at once, and try them again a second later: a request
    # sent before a 429 storm then reached the sandbox inside the storm's Retry-After.
    request_queue_size = 128
    daemon_threads = True


class SandboxServer:
    """Serves a Sandbox on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0):
        handler = type("Handler", (_Handler,), {"sandbox": sandbox})
        self.sandbox = sandbox
        self.httpd = _HTTPServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
