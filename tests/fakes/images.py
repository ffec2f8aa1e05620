"""A real loopback HTTP server for image-fetching tests, plus factories for tricky image bytes.

``ImageServer`` serves :class:`Reply` objects registered per path (a list of replies is served in
turn, the last one repeating), counts requests per path (``requests``), keeps the last request's
headers (``last_headers``), and can add latency to every response.
Usable as a context manager; the demo end-to-end test reuses it to serve demo images
(``ImageServer.serving({"/a.jpg": data})``).
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

__all__ = [
    "ImageServer",
    "Reply",
    "huge_png_header",
    "image_bytes",
    "redirect",
]

_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass
class Reply:
    """One HTTP answer.

    ``delay`` sleeps before the status line (a slow server); ``reset_after`` sends that many body bytes
    of a longer advertised Content-Length, then resets the connection; ``send_length=False`` omits
    Content-Length and ends the body by closing the connection.
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset_after: int | None = None
    send_length: bool = True


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, content_type="text/plain", headers={"Location": location})


def image_bytes(mode: str = "RGB", fmt: str = "JPEG", size: tuple[int, int] = (32, 24), **save) -> bytes:
    """A small image with some structure, saved in ``fmt`` from ``mode`` (RGB, L, CMYK, P, RGBA, I;16)."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    if mode == "I;16":
        image = Image.fromarray((np.arange(width * height, dtype="<u2") * 37).reshape(height, width))
    elif mode == "P":
        image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient)).quantize(16)
        save.setdefault("transparency", 0)
    else:
        image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: no 40 ms stall between headers and body
    server: _Server

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path
        reply = self.server.owner._next_reply(path, dict(self.headers))
        if self.server.owner.latency:
            time.sleep(self.server.owner.latency)
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.send_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.reset_after is not None:
            self.wfile.write(body[: reply.reset_after])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts, size caps)
            self.close_connection = True

    def log_message(self, *args):  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients open a connection per request (no keep-alive)
    owner: ImageServer

    def handle_error(self, request, client_address):  # clients that hang up are expected here
        pass


class ImageServer:
    """A threaded loopback HTTP server; ``url(path)`` gives the address, ``requests[path]`` the hit count."""

    def __init__(self, routes: dict[str, Reply | list[Reply]] | None = None, *, latency: float = 0.0):
        self.routes: dict[str, list[Reply]] = {}
        self.requests: Counter = Counter()
        self.last_headers: dict[str, dict[str, str]] = {}
        self.latency = latency
        self._lock = threading.Lock()
        for path, reply in (routes or {}).items():
            self.add(path, reply)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="image-server", daemon=True)

    @classmethod
    def serving(cls, files: dict[str, bytes], *, latency: float = 0.0) -> ImageServer:
        """A server for plain files: ``{"/path.jpg": bytes}``, content type from the bytes."""
        routes = {}
        for path, data in files.items():
            fmt = Image.open(io.BytesIO(data)).format
            routes[path] = Reply(data, content_type=_CONTENT_TYPES.get(fmt, "application/octet-stream"))
        return cls(routes, latency=latency)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, reply: Reply | list[Reply]) -> None:
        self.routes[path] = list(reply) if isinstance(reply, list) else [reply]

    def _next_reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests[path] += 1
            self.last_headers[path] = headers
            replies = self.routes.get(path)
            if not replies:
                return Reply(b"not found", status=404, content_type="text/plain")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
