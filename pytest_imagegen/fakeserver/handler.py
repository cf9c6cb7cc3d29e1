"""The fake server's HTTP handler: routes, auth, failure injection, error shapes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import socket
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..api.multipart import parse_multipart
from ..api.providers import Route, classify
from ..api.redact import key_digest
from . import gemini, streaming, toolcalls
from .faults import bomb_png, gzip_bomb

FILES = "__files__"


def _parse_form(raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body: its text fields (``n`` as a number) and, under
    ``__files__``, its files as (field name, bytes)."""

    text, files = parse_multipart(raw) or ({}, [])
    out: dict[str, Any] = {FILES: files}
    for key, value in text.items():
        numeric = key in ("n", "output_compression", "partial_images") and value.isdigit()
        out[key] = int(value) if numeric else value
        if key == "stream" and value in ("true", "false"):
            out[key] = value == "true"
    return out


def _loggable(body: Any) -> Any:
    """A request body for the log: files as their name and sha256, not their bytes."""
    if body is _INVALID:
        return None
    if isinstance(body, dict) and FILES in body:
        out = {k: v for k, v in body.items() if k != FILES}
        out["files"] = [[n, hashlib.sha256(d).hexdigest()] for n, d in body[FILES]]
        return out
    return body


def _error(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _edit_problem(body: Any, files: Any) -> tuple[int, dict[str, Any]] | None:
    """The API's 400 answers for an edit without an image, or with a mask that does not fit."""
    from PIL import Image

    images = [d for name, d in files or [] if name in ("image", "image[]")]
    masks = [d for name, d in files or [] if name == "mask"]
    if not images:
        return 400, _error("Missing required parameter: 'image'.", "invalid_request_error",
                           "image", "missing_required_parameter")  # fmt: skip
    try:
        with Image.open(io.BytesIO(images[0])) as first:
            size = first.size
        if masks:
            with Image.open(io.BytesIO(masks[0])) as mask:
                if mask.size != size:
                    return 400, _error(
                        f"Invalid 'mask': its size {mask.size[0]}x{mask.size[1]} does not match "
                        f"the image's {size[0]}x{size[1]}.", "invalid_request_error", "mask",
                        "invalid_value")  # fmt: skip
    except OSError:
        return 400, _error("Invalid 'image': the file is not a supported image.",
                           "invalid_request_error", "image", "invalid_image")  # fmt: skip
    return None


INJECTED_ERRORS = {
    400: (
        "Your request was rejected as a result of our safety system.",
        "invalid_request_error",
        "content_policy_violation",
    ),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "permission_denied", None),
    429: (
        "Rate limit reached for images per minute. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def _make_handler(server: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pytest-imagegen-fake/1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def handle(self) -> None:
            """A client that hangs up (a timeout, Ctrl-C) is not an error of the server."""
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                super().handle()

        shape = "openai"  # the route's error shape (gemini: Google's)

        def _send_json(
            self, status: int, payload: Any, headers: dict[str, str] | None = None
        ) -> None:
            if self.shape == "gemini":
                payload = gemini.google_shape(status, payload)
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _read_json(self) -> Any:
            text = (self.headers.get("Content-Length") or "0").strip()
            length = int(text) if text.isdigit() else -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                return _INVALID
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "")
            if "multipart/form-data" in content_type:
                return _parse_form(raw)
            try:
                return json.loads(raw or b"null")
            except ValueError:
                return _INVALID

        def _admin_allowed(self) -> bool:
            """The control endpoints need the server's per-run token and a loopback Host."""
            host = (self.headers.get("Host") or "").rsplit(":", 1)
            if host[0].strip("[]") not in ("127.0.0.1", "localhost", "::1") or (
                len(host) == 2 and host[1] != str(server.port)
            ):
                self._send_json(403, _error("Foreign Host header.", "permission_denied"))
                return False
            given = self.headers.get("X-Fake-Token") or ""  # never in the URL (logs keep URLs)
            if not hmac.compare_digest(given.encode(), server.admin_token.encode()):
                self._send_json(401, _error("Missing or wrong admin token.", "permission_denied"))
                return False
            return True

        def do_GET(self) -> None:
            self.shape = "openai"
            if self.path.startswith("/_fake/"):
                if self._admin_allowed() and self.path.split("?", 1)[0] == "/_fake/stats":
                    self._send_json(200, server.stats())
                elif self.path.split("?", 1)[0] != "/_fake/stats":
                    self._send_json(404, _error("Unknown control.", "invalid_request_error"))
                return
            if self.path.startswith("/v1/files/"):
                failure = server._next_failure("files")
                if failure and "png" in failure:  # the download itself is the bomb
                    data = bomb_png(*(int(v) for v in failure["png"]))
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if failure and self._fail(failure):
                    return
                parts = urllib.parse.urlsplit(self.path)
                tokens = urllib.parse.parse_qs(parts.query).get("token")
                token = tokens[0] if tokens else None
                found = server.get_file(parts.path.rsplit("/", 1)[-1], token)
                if found is None:
                    self._send_json(404, _error("No such file.", "invalid_request_error"))
                    return
                data, content_type = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._send_json(404, _error(f"Unknown path {self.path}", "invalid_request_error"))

        def do_POST(self) -> None:
            if self.path.startswith("/_fake/"):
                if not self._admin_allowed():  # before reading anything of the body
                    self.close_connection = True
                    return
                body = self._read_json()
                if body is _INVALID:
                    self._send_json(400, _error("The body is not JSON.", "invalid_request_error"))
                    return
                self._control(self.path.split("?", 1)[0][len("/_fake/") :], body)
                return
            body = self._read_json()
            path = self.path.split("?", 1)[0].rstrip("/")
            found = classify("POST", path)
            self.shape = found.provider if found is not None else "openai"
            if (
                found is None
                or found.fake_path != path
                or found.endpoint in ("variations", "streamGenerateContent")
            ):
                self._send_json(404, _error(f"Unknown path {self.path}", "invalid_request_error"))
                return
            chat = found.kind == "judge"
            key = self._key(found)
            with server._lock:
                if chat:
                    server.chat_requests += 1
                else:
                    server.requests += 1
                limited = None if chat else server._over_limit(body)
                if limited is None:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                server.log.append({
                    "path": _without_secrets(self.path),  # a query's key or token: not kept
                    "body": _loggable(body),
                    "key_sha256": key_digest(key) if key else None,  # never the key
                    "host": self.headers.get("Host"),
                    "time": time.time(),
                })  # fmt: skip
            if limited is not None:  # --max-inflight / --rate-limit: the provider's 429
                self._send_json(
                    429,
                    _error("Rate limit reached for images per minute. Please try again later.",
                           "requests", None, "rate_limit_exceeded"),
                    {"Retry-After": f"{limited:.2f}"},
                )  # fmt: skip
                return
            try:
                self._generation(body, key, chat, found)
            finally:
                with server._lock:
                    server.active -= 1

        def _key(self, found: Route) -> str:
            """The key: Bearer on every route; ``api-key`` on Azure's; ``x-goog-api-key``
            or ``?key=`` on Gemini's."""
            auth = self.headers.get("Authorization", "")
            key = auth[7:] if auth.startswith("Bearer ") else ""
            if not key and found.provider == "azure":
                key = self.headers.get("api-key", "")
            if not key and found.provider == "gemini":
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                key = self.headers.get("x-goog-api-key", "") or (query.get("key") or [""])[0]
            return key

        def _missing_key(self, found: Route | None) -> None:
            if found is not None and found.provider == "gemini":
                self._send_json(403, gemini.error(403, "Method doesn't allow unregistered "
                                "callers (callers without established identity). Please use "
                                "API Key or other form of API consumer identity to call this "
                                "API."))  # fmt: skip
                return
            if found is not None and found.provider == "azure":
                self._send_json(401, {"error": {"code": "401", "message": "Access denied due "
                                "to invalid subscription key or wrong API endpoint. Make sure "
                                "to provide a valid key for an active subscription and use a "
                                "correct regional API endpoint for your resource."}})  # fmt: skip
                return
            self._send_json(401, _error(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth.", "invalid_request_error", None,
                "missing_api_key"))  # fmt: skip

        def _send_events(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _provider_answer(self, body: Any, found: Route, failure: Any) -> bool:
            """Gemini and Responses requests (answered here: ``True``); Azure's deployment
            resolved to its model in ``body``."""
            if found.provider == "gemini":
                status, payload = gemini.answer(server, found.model or "", body)
                if status == 200 and failure and "usage" in failure:
                    payload["usageMetadata"] = failure["usage"]
                self._send_json(status, payload)
                return True
            if found.kind == "responses":
                self._send_json(*toolcalls.answer(server, body))
                return True
            if found.provider == "azure":
                model = server.deployment_model(found.model or "")
                if model is None:
                    self._send_json(404, {"error": {"code": "DeploymentNotFound", "message":
                                    "The API deployment for this resource does not exist. If "
                                    "you created the deployment within the last 5 minutes, "
                                    "please wait a moment and try again."}})  # fmt: skip
                    return True
                if isinstance(body, dict):
                    body["model"] = model
            return False

        def _fail(self, failure: dict[str, Any]) -> bool:
            """Act out an injected failure; ``True`` when it answered (or hung up)."""
            if failure.get("delay"):
                time.sleep(float(failure["delay"]))
            if "raw" in failure:
                data = str(failure["raw"]).encode("utf-8")
                self.send_response(int(failure.get("status", 200)))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True
            if self._send_fault(failure):
                return True
            if failure.get("drop"):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return True
            if failure.get("status"):
                status = int(failure["status"])
                message, error_type, code = INJECTED_ERRORS.get(
                    status, ("Injected failure.", "server_error", None)
                )
                if failure.get("code"):
                    code = failure["code"]
                    error_type = (
                        "insufficient_quota" if code == "insufficient_quota" else error_type
                    )
                    if code == "insufficient_quota":
                        message = "You exceeded your current quota, please check your plan and billing details."
                headers = {}
                if "retry_after" in failure:
                    headers["Retry-After"] = str(failure["retry_after"])
                self._send_json(
                    status, _error(failure.get("message", message), error_type, None, code), headers
                )
                return True
            return False

        def _generation(
            self, body: Any, key: str, chat: bool = False, found: Route | None = None
        ) -> None:
            failure = server._next_failure("chat" if chat else "images")
            if server.latency:
                time.sleep(server.latency)
            if failure and self._fail(failure):
                return
            if not key:
                self._missing_key(found)
                return
            if server.api_key is not None and key != server.api_key:
                self._send_json(
                    401,
                    _error(
                        "Incorrect API key provided.",
                        "invalid_request_error",
                        None,
                        "invalid_api_key",
                    ),
                )
                return
            if body is _INVALID:
                self._send_json(
                    400,
                    _error(
                        "We could not parse the JSON body of your request.", "invalid_request_error"
                    ),
                )
                return
            if chat:
                self._send_json(*server.judge(body))
                return
            if found is not None and self._provider_answer(body, found, failure):
                return
            files = body.pop(FILES, None) if isinstance(body, dict) else None
            endpoint = found.endpoint if found is not None else "generations"
            if endpoint == "edits":
                problem = _edit_problem(body, files)
                if problem:
                    self._send_json(*problem)
                    return
            problem = server.validate(body, endpoint)
            if problem:
                self._send_json(*problem)
                return
            base = f"http://{self.headers.get('Host') or f'{server.host}:{server.port}'}"
            response = server.generate(body, base, files)
            stream = body.get("stream") is True
            if stream:
                streaming.add_partial_tokens(response, int(body.get("partial_images") or 0))
            if failure and "usage" in failure:  # e.g. a billing surprise: usage above list price
                response["usage"] = failure["usage"]
            if stream:
                self._send_events(streaming.events(body, response, endpoint))
                return
            self._send_json(200, response)

        def _send_fault(self, failure: dict[str, Any]) -> bool:
            """Answers that attack the client: a trickling body, a huge body, a gzip bomb,
            a decompression-bomb PNG. ``True`` when one was sent."""
            if "trickle" in failure:  # one byte every `trickle` seconds
                data = json.dumps({"data": [{"b64_json": "A" * 4096}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(float(failure["trickle"]))
                return True
            if "body_mb" in failure:  # a valid-looking answer of that many MB
                size = int(float(failure["body_mb"]) * 1024 * 1024)
                head, tail = b'{"data": [{"b64_json": "', b'"}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(size + len(head) + len(tail)))
                self.end_headers()
                self.wfile.write(head)
                chunk = b"A" * (1024 * 1024)
                for start in range(0, size, len(chunk)):
                    self.wfile.write(chunk[: min(len(chunk), size - start)])
                self.wfile.write(tail)
                return True
            if "gzip_bomb_mb" in failure:  # small on the wire, huge once decompressed
                data = gzip_bomb(int(failure["gzip_bomb_mb"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True
            if "png" in failure:  # an image whose header claims W x H pixels
                width, height = failure["png"]
                b64 = base64.b64encode(bomb_png(int(width), int(height))).decode()
                usage = {"input_tokens": 10, "output_tokens": 30,
                         "input_tokens_details": {"text_tokens": 10, "image_tokens": 0}}  # fmt: skip
                self._send_json(200, {"created": 1_700_000_000, "data": [{"b64_json": b64}],
                                      "usage": usage})  # fmt: skip
                return True
            return False

        def _control(self, action: str, body: Any) -> None:
            body = body if isinstance(body, dict) else {}
            if action == "inject":
                problem = server.check_failures(body.get("failures", []))
                if problem:
                    self._send_json(400, _error(problem, "invalid_request_error"))
                    return
                server.inject(*body.get("failures", []))
            elif action == "reset":
                server.reset()
            elif action == "config":
                problem = server.configure(body)
                if problem:
                    self._send_json(400, _error(problem, "invalid_request_error"))
                    return
            else:
                self._send_json(404, _error(f"Unknown control {action}", "invalid_request_error"))
                return
            self._send_json(200, {"ok": True})

    return Handler


_INVALID = object()


def _without_secrets(path: str) -> str:
    """A request path for the log, without query parameters that may carry a credential."""
    parts = urllib.parse.urlsplit(path)
    if not parts.query:
        return path
    kept = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in ("key", "api_key", "api-key", "token", "access_token")
    ]
    query = urllib.parse.urlencode(kept)
    return parts.path + (f"?{query}" if query else "")


MAX_BODY = 64 * 1024 * 1024  # a request body larger than this is refused unread
