"""An OpenAI-compatible fake images server for tests, demos and benchmarks.

    python -m pytest_imagegen.fakeserver [--host 127.0.0.1] [--port 0] [--latency S]

Serves ``POST /v1/chat/completions`` as a deterministic vision judge (see
:meth:`FakeImagesServer.judge`) and ``POST /v1/images/generations`` with a deterministic, photo-like
picture per (prompt, size, quality, seed) at a realistic encoded size, the
API's validation errors and error shapes, ``usage`` tokens consistent with
the shipped price table, and Bearer auth. It listens on loopback only unless
told otherwise.

Failure injection (for tests) through :meth:`FakeImagesServer.inject` in
process, or ``POST /_fake/inject`` with ``{"failures": [...]}``. Each
failure is consumed by one generation request, in order::

    {"status": 429, "retry_after": 0.1}            # rate limit with Retry-After
    {"status": 429, "code": "insufficient_quota"}  # not retried by clients
    {"status": 500}                                # any 5xx
    {"status": 400, "code": "content_policy_violation"}
    {"drop": true}                                 # close without answering
    {"delay": 2.0}                                 # slow, then answer normally
    {"delay": 2.0, "status": 503}                  # slow, then fail
    {"usage": {"input_tokens": 10, ...}}           # answer normally with this usage
    {"status": 401, "message": "..."}              # an error with this message
    {"raw": "not json"}                            # 200 with this body (unreadable)
    "count": N on any of them repeats it N times

``GET /_fake/stats`` returns request counts and a log; ``POST /_fake/reset``
clears them; ``POST /_fake/config`` sets ``latency``, ``seed``, ``api_key``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from http.server import ThreadingHTTPServer
from typing import Any

from ..api.shape import AUTO, input_image_tokens, parse_size
from . import conform
from .catalog import catalog
from .handler import _error, _make_handler
from .judging import _judge_inputs, _nearest
from .pictures import (
    CONTENT_TYPES,
    PIL_FORMATS,
    draw_captions,
    encode_picture,
    quoted_text,
    render_picture,
    signature,
    with_transparency,
)

ALLOWED_PARAMS = frozenset({
    "model", "prompt", "n", "size", "quality", "background", "moderation",
    "output_compression", "output_format", "partial_images", "response_format",
    "style", "user", "seed", "stream", "safety_identifier", "input_fidelity",
})  # fmt: skip


class FakeImagesServer:
    """The fake server, runnable in a background thread (tests) or in the foreground (CLI)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        seed: int = 0,
        api_key: str | None = None,
        max_inflight: int | None = None,
        rate_limit: int | None = None,
        deployments: dict[str, str] | None = None,
    ) -> None:
        import numpy  # noqa: F401  (imported up front: picture threads must not race an import)
        from PIL import Image  # noqa: F401

        self.latency = latency
        self.seed = seed
        self.admin_token = secrets.token_urlsafe(16)  # for /_fake/*; never shown in a log
        self.api_key = api_key
        self.catalog = catalog()
        #: Azure deployments it serves: name -> model (a deployment named as a model serves it)
        self.deployments: dict[str, str] = dict(deployments or {})
        self._lock = threading.Lock()
        self._failures: list[dict[str, Any]] = []
        self._cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self.log: list[dict[str, Any]] = []
        self.requests = 0  # generation requests received (any outcome)
        self.chat_requests = 0  # judge (chat completions) requests received
        self.max_inflight = max_inflight  # answer 429 beyond this many in flight
        self.rate_limit = rate_limit  # images per minute, 429 beyond
        self.rejected = 0  # 429s sent for those limits
        self.failures_started = 0  # injected failures being acted out (or done)
        self._sent: deque[tuple[float, int]] = deque()
        self._rendered: OrderedDict[int, str] = OrderedDict()  # picture signature -> prompt
        self.downloads = 0  # GETs of url images
        self.active = 0  # generation requests in flight right now
        self.max_active = 0
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give clients (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeImagesServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="fake-images", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeImagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control
    def check_failures(self, failures: Any) -> str | None:
        """Why ``POST /_fake/inject``'s ``failures`` cannot be used, or ``None``."""
        if not isinstance(failures, list) or len(failures) > 1000:
            return "failures must be a list of at most 1000 objects"
        for failure in failures:
            if not isinstance(failure, dict):
                return "each failure must be an object"
            count = failure.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
                return "count must be a whole number from 1 to 10000"
            for name in ("delay", "trickle", "body_mb", "gzip_bomb_mb"):
                value = failure.get(name)
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float))
                    or not 0 <= value <= 4096
                ):  # fmt: skip
                    return f"{name} must be a number from 0 to 4096"
        return None

    def inject(self, *failures: dict[str, Any]) -> None:
        with self._lock:
            for failure in failures:
                self._failures.extend([dict(failure)] * int(failure.get("count", 1)))

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self.log.clear()
            self.requests = self.downloads = self.max_active = self.chat_requests = 0
            self.rejected = 0
            self._sent.clear()

    def _over_limit(self, body: Any) -> float | None:
        """Seconds to wait when this request is over ``max_inflight`` or ``rate_limit``
        (called under the lock), else ``None`` (and the request is counted)."""
        now = time.time()
        images = body.get("n", 1) if isinstance(body, dict) else 1
        images = images if isinstance(images, int) and images > 0 else 1
        while self._sent and now - self._sent[0][0] >= 60:
            self._sent.popleft()
        wait = None
        if self.max_inflight is not None and self.active >= self.max_inflight:
            wait = 1.0
        elif self.rate_limit is not None:
            used = sum(n for _, n in self._sent)
            if used + images > self.rate_limit and self._sent:
                wait = max(0.05, self._sent[0][0] + 60 - now)
        if wait is not None:
            self.rejected += 1
            return wait
        self._sent.append((now, images))
        return None

    def configure(self, body: dict[str, Any]) -> str | None:
        """``POST /_fake/config``: validated settings; the problem, or ``None`` when applied."""
        numbers = {"latency": (0.0, 600.0), "max_inflight": (1, 10_000), "rate_limit": (1, 10**6)}
        allowed = (*numbers, "seed", "api_key")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            return f"unknown setting {unknown[0]!r}; allowed: {', '.join(allowed)}"
        for name, (low, high) in numbers.items():
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name} must be a number"
            if not low <= value <= high:
                return f"{name} must be from {low} to {high}"
        if "seed" in body and (isinstance(body["seed"], bool) or not isinstance(body["seed"], int)):
            return "seed must be a whole number"
        if (
            "api_key" in body
            and body["api_key"] is not None
            and not isinstance(body["api_key"], str)
        ):
            return "api_key must be a string or null"
        with self._lock:
            for name, value in body.items():
                setattr(self, name, value)
        return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rejected_429": self.rejected,
                "peak_inflight": self.max_active,
                "requests": self.requests,
                "chat_requests": self.chat_requests,
                "downloads": self.downloads,
                "max_active": self.max_active,
                "pending_failures": len(self._failures),
                "log": [dict(e) for e in self.log],
            }

    def _next_failure(self, route: str = "images") -> dict[str, Any] | None:
        """The next injected failure for ``route`` (images, chat or files): one with
        ``"only": <route>`` is kept for that route; others go to images and chat calls."""
        with self._lock:
            for index, failure in enumerate(self._failures):
                only = failure.get("only")
                if only == route or (only is None and route != "files"):
                    self.failures_started += 1
                    return self._failures.pop(index)
            return None

    # -- generation
    def deployment_model(self, name: str) -> str | None:
        """The model an Azure deployment serves (``None``: no such deployment)."""
        model = self.deployments.get(name, name)
        found = self.catalog.models.get(model)
        return model if found is not None and found.provider == "openai" else None

    def picture_bytes(
        self,
        key: tuple[Any, ...],
        w: int,
        h: int,
        fmt: str,
        compression: int | None,
        transparent: bool = False,
    ) -> bytes:
        cache_key = (*key, fmt, compression, transparent)
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        picture = render_picture("|".join(map(str, key)), w, h)
        draw_captions(picture, quoted_text(str(key[0])))
        shown = with_transparency(picture) if transparent else picture
        data = encode_picture(shown, fmt, compression)
        with self._lock:
            self._rendered[signature(picture)] = str(key[0])
            while len(self._rendered) > 512:
                self._rendered.popitem(last=False)
            self._cache[cache_key] = data
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return data

    def store_file(self, data: bytes, fmt: str) -> str:
        """A download name with a signed-URL style token (``name?token=...``)."""
        name = f"{uuid.uuid4().hex}.{fmt}"
        with self._lock:
            self._files[name] = (data, CONTENT_TYPES[fmt])
            while len(self._files) > 256:
                self._files.popitem(last=False)
        return name

    def _file_token(self, name: str) -> str:
        return hashlib.sha256((self.admin_token + name).encode()).hexdigest()[:16]

    def get_file(self, name: str, token: str | None = None) -> tuple[bytes, str] | None:
        """A stored download; ``None`` when unknown or its URL token is wrong."""
        with self._lock:
            self.downloads += 1
            if token is not None and token != self._file_token(name):
                return None
            return self._files.get(name)

    def judge(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A deterministic vision judge: it recognises pictures it rendered (by a coarse
        signature that survives downscaling) and scores a rubric by how many of its words
        the picture's prompt has."""
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or model not in self.catalog.chat:
            return 400, _error(f"The model '{model}' does not exist.", "invalid_request_error",
                               "model", "model_not_found")  # fmt: skip
        rubric, image = _judge_inputs(body)
        if image is None:
            return 400, _error("The message has no image_url.", "invalid_request_error",
                               "messages", "invalid_value")  # fmt: skip
        with self._lock:
            known = dict(self._rendered)
        prompt = _nearest(known, image)
        words = [w for w in re.findall(r"[a-z0-9]+", rubric.lower()) if len(w) >= 4]
        if prompt is None:
            score, reason = 0.5, "this fake judge did not render the image"
        elif not words:
            score, reason = 1.0, "the rubric names nothing to check"
        else:
            have = set(re.findall(r"[a-z0-9]+", prompt.lower()))
            hits = [w for w in words if w in have]
            score = round(len(hits) / len(words), 2)
            reason = f"shows {len(hits)} of {len(words)} things the rubric names"
        content = json.dumps({"score": score, "reason": reason})
        prices = self.catalog.chat[model]
        # billed by the image's real size (a test may send a big one), below the estimate
        prompt_tokens = int(prices.tokens_for(*image.size) * 0.9) + len(rubric) // 4 + 60
        completion_tokens = max(1, len(content) // 4)
        return 200, {
            "id": f"chatcmpl-fake-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }  # fmt: skip

    def validate(
        self, body: Any, endpoint: str = "generations"
    ) -> tuple[int, dict[str, Any]] | None:
        """The API's 400 answers for a bad request body, or None."""

        def bad(
            message: str, param: str | None, code: str | None = None
        ) -> tuple[int, dict[str, Any]]:
            return 400, _error(message, "invalid_request_error", param, code)

        if not isinstance(body, dict):
            return bad("The request body must be a JSON object.", None)
        for key in body:
            if key not in ALLOWED_PARAMS:
                return bad(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
        model = body.get("model", "gpt-image-2")
        if model not in self.catalog.models or self.catalog.models[model].provider != "openai":
            return bad(f"The model '{model}' does not exist.", "model", "model_not_found")
        prices = self.catalog.models[model]
        refused = conform.problem(body, str(model), endpoint)
        if refused:
            return bad(*refused)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return bad(
                "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
            )
        if prices.max_prompt_chars and len(prompt) > prices.max_prompt_chars:
            return bad(
                f"Invalid 'prompt': string too long (max {prices.max_prompt_chars}).",
                "prompt",
                "string_above_max_length",
            )
        n = body.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= prices.max_n:
            return bad(
                f"Invalid 'n': must be between 1 and {prices.max_n}.", "n", "integer_out_of_range"
            )
        size = body.get("size", AUTO)
        if not isinstance(size, str) or prices.size_problem(size):
            return bad(
                f"Invalid size '{size}'. Supported sizes are {prices.allowed_sizes()}.",
                "size",
                "invalid_value",
            )
        quality = body.get("quality")
        if quality is not None and quality != AUTO and quality not in prices.qualities:
            return bad(f"Invalid quality '{quality}'.", "quality", "invalid_value")
        fmt = body.get("output_format", "png")
        if fmt not in PIL_FORMATS:
            return bad(f"Invalid output_format '{fmt}'.", "output_format", "invalid_value")
        return None

    def generate(
        self, body: dict[str, Any], base: str, files: list[tuple[str, bytes]] | None = None
    ) -> dict[str, Any]:
        model = body.get("model", "gpt-image-2")
        prices = self.catalog.models[model]
        n = int(body.get("n", 1))
        size = body.get("size", AUTO)
        size = "1024x1024" if size == AUTO else size
        w, h = parse_size(size) or (1024, 1024)
        quality = body.get("quality") or AUTO
        quality = "medium" if quality == AUTO and "medium" in prices.qualities else quality
        if quality == AUTO:
            quality = prices.qualities[0]
        fmt = body.get("output_format", "png")
        compression = body.get("output_compression")
        seed = body.get("seed", self.seed)
        data = []
        for index in range(n):
            key: tuple[Any, ...] = (body["prompt"], size, quality, seed, index)
            if files:  # an edit: the result depends on the input images too
                key += (hashlib.sha256(b"".join(d for _, d in files)).hexdigest()[:16],)
            picture = self.picture_bytes(
                key, w, h, fmt, compression, body.get("background") == "transparent"
            )
            item: dict[str, Any] = {
                "revised_prompt": body["prompt"] if model == "dall-e-3" else None
            }
            if body.get("response_format") == "url":
                name = self.store_file(picture, fmt)
                item["url"] = f"{base}/v1/files/{name}?token={self._file_token(name)}"
            else:
                item["b64_json"] = base64.b64encode(picture).decode("ascii")
            if item["revised_prompt"] is None:
                del item["revised_prompt"]
            data.append(item)
        result: dict[str, Any] = {
            "created": 1_700_000_000,
            "data": data,
            **conform.echoed(body, model, size, quality, fmt),
        }
        if prices.output_rate is not None:
            # below the published list price, as a real bill is
            output_tokens = prices.output_tokens(size, quality, n)
            text_tokens = max(1, -(-len(body["prompt"]) // 3) * 3 // 4)
            image_tokens = sum(_input_tokens(d) for _, d in files or [])
            result["usage"] = {
                "input_tokens": text_tokens + image_tokens,
                "output_tokens": output_tokens,
                "total_tokens": text_tokens + image_tokens + output_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
            }
        return result


def _input_tokens(data: bytes) -> int:
    """Billed input tokens of an input image: below the list estimate, as a real API is."""
    from PIL import Image

    with contextlib.suppress(OSError), Image.open(io.BytesIO(data)) as img:
        return int(input_image_tokens(*img.size) * 0.9)
    return 0
