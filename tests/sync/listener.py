"""A hostile listener on loopback: what a sync admin would point a destination at to steal a
credential. It records every request and answers with a body that echoes the request's
headers, raw and in base64, so that a test can see whether anything it echoed was kept."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Listener:
    def __init__(self, *, status: int = 400):
        self.status = status
        self.requests: list[dict] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                headers = dict(self.headers.items())
                listener.requests.append({"path": self.path, "headers": headers, "body": body})
                echoed = " ".join(f"{k}: {v}" for k, v in headers.items())
                text = json.dumps(
                    {
                        "message": f"you sent {echoed} {self.path}",
                        "error": base64.b64encode(echoed.encode()).decode(),
                        "id": "echo-1",
                        "success": listener.status < 300,
                    }
                ).encode()
                self.send_response(listener.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def headers_received(self) -> str:
        return "\n".join(json.dumps(r["headers"]) for r in self.requests)
