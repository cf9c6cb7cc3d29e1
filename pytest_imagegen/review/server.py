"""``pytest --imagegen-review``: the review page served on loopback, with Approve / Reject.

Standard library only (``http.server``), bound to ``127.0.0.1`` on a free port.
Every request must carry the run's random token (``?token=`` or the
``X-Imagegen-Token`` header) and a ``Host`` of ``127.0.0.1:<port>`` or
``localhost:<port>`` (so another web page cannot reach it through DNS
rebinding); anything else is refused before it is read. The server serves only
the page, its previews (by their content-addressed names) and the full images
the page links (by name, each checked inside a suite root); a POST to
``/decide`` hands ``{nodeid, action, images}`` to the session's decision
function, which writes the baseline through the same code as
``--imagegen-update-baselines``. Nothing is logged (the URL holds the token).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..api.errors import ImagegenError
from ..cassettes.files import UnsafePath, check_inside
from .htmlcase import Links
from .previews import image_name

MAX_BODY = 64 * 1024
_PREVIEW_RE = re.compile(r"(?:[0-9a-f]{64}|diff-[0-9a-f]{20}-[0-9a-f]{20})\.webp")

#: renders the page for these links and the decisions taken so far (nodeid -> what)
Render = Callable[[Links, Mapping[str, str]], str]
#: applies one decision (the POSTed JSON); returns what was done, ImagegenError if refused
Decide = Callable[[Mapping[str, Any]], str]


class ReviewServer:
    def __init__(
        self, page_dir: Path, roots: Sequence[Path], render: Render, decide: Decide
    ) -> None:
        self.page_dir = page_dir
        self.roots = [r.resolve() for r in roots]
        self.render = render
        self.decide = decide
        self.token = secrets.token_urlsafe(16)
        self.decided: dict[str, str] = {}
        self.full_images: dict[str, Path] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def page(self) -> str:
        links = Links(self.page_dir, token=self.token)
        with self.lock:
            text = self.render(links, dict(self.decided))
            self.full_images.update(links.full_images)
        return text

    def full_image(self, name: str) -> Path | None:
        """A full image the page links, if it is one and lies inside a suite root."""
        if image_name(name) is None:
            return None
        with self.lock:
            path = self.full_images.get(name)
        if path is None or path.is_symlink():
            return None
        for root in self.roots:
            with contextlib.suppress(UnsafePath):
                check_inside(path, root)
                return path if path.is_file() else None
        return None

    def preview(self, name: str) -> Path | None:
        if not _PREVIEW_RE.fullmatch(name):
            return None
        path = self.page_dir / "previews" / name
        return path if path.is_file() and not path.is_symlink() else None

    def apply(self, body: Mapping[str, Any]) -> str:
        with self.lock:
            message = self.decide(body)
            self.decided[str(body.get("nodeid"))] = message
        return message

    # -- running
    def start(self) -> ReviewServer:
        """Serve in a background thread (tests)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def serve_until_interrupted(self, say: Callable[[str], None]) -> None:
        """Serve in this thread until Ctrl-C."""
        restore = None
        if threading.current_thread() is threading.main_thread():
            restore = signal.signal(signal.SIGINT, signal.default_int_handler)
        say(f"imagegen review: {self.url}")
        say("  open it in a browser; Approve / Reject write baselines at once. Ctrl-C stops.")
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            say("imagegen review: stopped")
        finally:
            self.httpd.server_close()
            if restore is not None:
                signal.signal(signal.SIGINT, restore)


def _handler(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pytest-imagegen-review"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return  # the request line holds the token

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _message(self, status: int, message: str) -> None:
            body = json.dumps({"ok": status < 400, "message": message}).encode("utf-8")
            self._send(status, body, "application/json")

        def _allowed(self) -> str | None:
            """The request's path when host and token are right; refused otherwise."""
            host = self.headers.get("Host", "")
            if host not in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
                self._message(403, "refused: wrong Host header")
                return None
            parts = urlsplit(self.path)
            given = self.headers.get("X-Imagegen-Token") or ""
            if not given:
                given = (parse_qs(parts.query).get("token") or [""])[0]
            if not secrets.compare_digest(given.encode(), server.token.encode()):
                self._message(403, "refused: the token is missing or wrong")
                return None
            return unquote(parts.path)

        def do_GET(self) -> None:
            path = self._allowed()
            if path is None:
                return
            if path in ("/", "/index.html"):
                body = server.page().encode("utf-8")
                self._send(200, body, "text/html; charset=utf-8")
                return
            file = None
            kind = "image/webp"
            if path.startswith("/previews/"):
                file = server.preview(path[len("/previews/") :])
            elif path.startswith("/full/"):
                name = path[len("/full/") :]
                file = server.full_image(name)
                ext = name.rpartition(".")[2]
                kind = {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
                    ext, "image/jpeg" if ext in ("jpg", "jpeg") else "application/octet-stream"
                )
            if file is None:
                self._message(404, "not found (only the page, its previews and its images)")
                return
            self._send(200, file.read_bytes(), kind)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:
            path = self._allowed()
            if path is None:
                return
            if path != "/decide":
                self._message(404, "not found")
                return
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                self._message(415, "refused: send JSON")
                return
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._message(413, "refused: body missing or too large")
                return
            try:
                body = json.loads(self.rfile.read(length).decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self._message(400, "refused: not JSON")
                return
            if not isinstance(body, dict):
                self._message(400, "refused: send a JSON object")
                return
            try:
                message = server.apply(body)
            except ImagegenError as exc:
                self._message(400, f"refused: {exc}")
                return
            self._message(200, message)

    return Handler
