"""A local HTTP server on 127.0.0.1 that misbehaves on request: URL inputs are tested against it only.

Routes: /img.png and /noext (a PNG), /page.jpg (HTML sent as image/jpeg), /missing (404), /stall
(no answer for 30 s), /stall-body (half a body, then 30 s of nothing), /drip (a byte every 0.1 s,
forever), /huge (says 2 GB), /endless (2 GB without a length, made lazily), /to-file, /to-ftp,
/to-img (redirects), /loop (a redirect to itself), /chain/N (N redirects in a row).
"""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TWO_GB = 2 << 30


def png_bytes(size=(40, 30), seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class Server:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sent: dict[str, int] = {}
        self.stop = threading.Event()
        self.png = png_bytes()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a body without a length ends when the connection does

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                path = self.path
                try:
                    if path in ("/img.png", "/noext"):
                        self._send(200, server.png, "image/png" if path == "/img.png" else "text/plain")
                    elif path == "/page.jpg":
                        self._send(200, b"<html><body>not a picture</body></html>", "image/jpeg")
                    elif path == "/missing":
                        self._send(404, b"no", "text/plain")
                    elif path == "/stall":
                        server.stop.wait(30)
                    elif path == "/stall-body":
                        self._headers(200, "image/png", len(server.png))
                        self.wfile.write(server.png[:100])
                        self.wfile.flush()
                        server.stop.wait(30)
                    elif path == "/drip":
                        self._headers(200, "image/png", None)
                        while not server.stop.wait(0.1):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    elif path in ("/huge", "/endless"):
                        self._headers(200, "image/png", TWO_GB if path == "/huge" else None)
                        block = bytes(1 << 16)
                        sent = 0
                        while sent < TWO_GB and not server.stop.is_set():
                            self.wfile.write(block)
                            sent += len(block)
                            server.sent[path] = sent
                    elif path in ("/to-file", "/to-ftp", "/to-img", "/loop"):
                        target = {"/to-file": "file:///etc/passwd", "/to-ftp": "ftp://127.0.0.1/img.png",
                                  "/to-img": "/img.png", "/loop": "/loop"}[path]
                        self._redirect(target)
                    elif path.startswith("/chain/"):
                        left = int(path.rsplit("/", 1)[1])
                        self._redirect(f"/chain/{left - 1}" if left > 0 else "/img.png")
                    else:
                        self._send(404, b"", "text/plain")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what these tests want

            def _headers(self, code: int, kind: str, length: int | None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self._headers(code, kind, len(body))
                self.wfile.write(body)

            def _redirect(self, target: str) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
