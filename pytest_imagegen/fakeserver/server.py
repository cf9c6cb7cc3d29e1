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

import argparse
import base64
import contextlib
import hashlib
import io
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .costs import AUTO, PriceTable, estimate_text_tokens, parse_size

ALLOWED_PARAMS = frozenset({
    "model", "prompt", "n", "size", "quality", "background", "moderation",
    "output_compression", "output_format", "partial_images", "response_format",
    "style", "user", "seed", "stream",
})  # fmt: skip
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


# ------------------------------------------------------------------ pictures


def render_picture(key: str, width: int, height: int) -> Any:
    """A deterministic landscape-like RGB picture (PIL Image) for ``key``.

    Sky gradient, a sun with glow, three layers of fractal ridges, blurred
    colour texture and sensor grain: enough structure for perceptual hashes
    to tell pictures apart and enough noise for PNGs of realistic size.
    """
    import numpy as np
    from PIL import Image

    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    w, h = width, height
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    top, bottom = rng.uniform(30, 190, 3), rng.uniform(110, 250, 3)
    img = (top * (1 - y) + bottom * y + np.zeros((1, w, 1), np.float32)).astype(np.float32)
    cx, cy, r = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.45), rng.uniform(0.04, 0.12)
    d = np.sqrt(((x - cx) * (w / h)) ** 2 + (y - cy) ** 2)
    img += np.exp(-((d / (r * 3)) ** 2)) * rng.uniform(40, 90) + (d < r) * 60.0
    xs = np.arange(w, dtype=np.float32) / w
    for layer in range(3):
        profile = np.zeros(w, np.float32)
        for octave in range(1, 7):
            phase = rng.uniform(0, 2 * np.pi, 2)
            amp = rng.uniform(0.5, 1.0) / octave**1.2
            freq = 2.0**octave
            profile += (
                amp * np.sin(xs * freq * np.pi + phase[0]) * np.cos(xs * freq * 1.7 + phase[1])
            )
        ridge = (0.45 + 0.15 * layer + rng.uniform(-0.05, 0.05) + 0.08 * profile)[None, :, None]
        colour = (rng.uniform(10, 160, 3) * (0.6 + 0.2 * layer)).astype(np.float32)
        mask = (y > ridge).astype(np.float32)
        shade = np.clip((y - ridge) * 2.5, 0, 1)
        img = (img * (1 - mask) + mask * (colour * (1 - 0.5 * shade))).astype(np.float32)
    small = rng.uniform(-24, 24, (max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
    luminance = small.mean(axis=2, keepdims=True)
    small = 0.7 * luminance + 0.3 * small + 128
    texture = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    img += np.asarray(texture, np.float32) - 128
    img += rng.normal(0, 5.0, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


QUOTED = re.compile(r'"([^"\n]{1,60})"')


def quoted_text(prompt: str) -> list[str]:
    """Text a prompt asks to show (in double quotes), drawn on the picture so OCR reads it."""
    return [m.strip() for m in QUOTED.findall(prompt) if m.strip()][:3]


def draw_captions(image: Any, lines: list[str]) -> None:
    """Each line large and legible on a white band across the middle of ``image``.

    Pillow's built-in bitmap font, scaled up with nearest-neighbour: crisp at any size
    and the same on every Pillow version.
    """
    if not lines:
        return
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    rendered = []
    for line in lines:
        left, top, right, bottom = (int(v) for v in measure.textbbox((0, 0), line, font=font))
        small = Image.new("L", (right - left + 4, bottom - top + 4), 0)
        ImageDraw.Draw(small).text((2 - left, 2 - top), line, fill=255, font=font)
        rendered.append(small)
    glyph_h = max(r.height for r in rendered)
    widest = max(r.width for r in rendered)
    scale = max(1, min((image.width - 32) // widest, (image.height // (3 * len(lines))) // glyph_h))
    band_h = sum(r.height * scale for r in rendered) + 16 * (len(rendered) + 1)
    top = (image.height - band_h) // 2
    image.paste((255, 255, 255), (0, top, image.width, top + band_h))
    y = top + 16
    for small in rendered:
        big = small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)
        image.paste((10, 10, 10), ((image.width - big.width) // 2, y), big)
        y += big.height + 16


def encode_picture(image: Any, fmt: str = "png", compression: int | None = None) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG")
    else:
        image.save(buf, PIL_FORMATS[fmt], quality=100 - (compression or 0) if compression else 90)
    return buf.getvalue()


# ------------------------------------------------------------------ server


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
    ) -> None:
        import numpy  # noqa: F401  (imported up front: picture threads must not race an import)
        from PIL import Image  # noqa: F401

        self.latency = latency
        self.seed = seed
        self.api_key = api_key
        self.prices = PriceTable.load()
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

    def _next_failure(self) -> dict[str, Any] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    # -- generation
    def picture_bytes(
        self, key: tuple[Any, ...], w: int, h: int, fmt: str, compression: int | None
    ) -> bytes:
        cache_key = (*key, fmt, compression)
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        picture = render_picture("|".join(map(str, key)), w, h)
        draw_captions(picture, quoted_text(str(key[0])))
        data = encode_picture(picture, fmt, compression)
        with self._lock:
            self._rendered[signature(picture)] = str(key[0])
            while len(self._rendered) > 512:
                self._rendered.popitem(last=False)
            self._cache[cache_key] = data
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return data

    def store_file(self, data: bytes, fmt: str) -> str:
        name = f"{uuid.uuid4().hex}.{fmt}"
        with self._lock:
            self._files[name] = (data, CONTENT_TYPES[fmt])
            while len(self._files) > 256:
                self._files.popitem(last=False)
        return name

    def get_file(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            self.downloads += 1
            return self._files.get(name)

    def judge(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A deterministic vision judge: it recognises pictures it rendered (by a coarse
        signature that survives downscaling) and scores a rubric by how many of its words
        the picture's prompt has."""
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or model not in self.prices.chat:
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
        prices = self.prices.chat[model]
        prompt_tokens = int(prices.image_tokens * 0.9) + len(rubric) // 4 + 60
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

    def validate(self, body: Any) -> tuple[int, dict[str, Any]] | None:
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
        if model not in self.prices.models:
            return bad(f"The model '{model}' does not exist.", "model", "model_not_found")
        prices = self.prices.models[model]
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
        if quality is not None and prices.quality_problem(quality):
            return bad(f"Invalid quality '{quality}'.", "quality", "invalid_value")
        fmt = body.get("output_format", "png")
        if fmt not in PIL_FORMATS:
            return bad(f"Invalid output_format '{fmt}'.", "output_format", "invalid_value")
        return None

    def generate(
        self, body: dict[str, Any], base: str, files: list[tuple[str, bytes]] | None = None
    ) -> dict[str, Any]:
        model = body.get("model", "gpt-image-2")
        prices = self.prices.models[model]
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
            picture = self.picture_bytes(key, w, h, fmt, compression)
            item: dict[str, Any] = {
                "revised_prompt": body["prompt"] if model == "dall-e-3" else None
            }
            if body.get("response_format") == "url":
                item["url"] = f"{base}/v1/files/{self.store_file(picture, fmt)}"
            else:
                item["b64_json"] = base64.b64encode(picture).decode("ascii")
            if item["revised_prompt"] is None:
                del item["revised_prompt"]
            data.append(item)
        result: dict[str, Any] = {
            "created": 1_700_000_000,
            "data": data,
            "size": size,
            "quality": quality,
            "output_format": fmt,
            "background": body.get("background", "opaque"),
        }
        if prices.tokens is not None:
            # Consistent with the price table: billed <= list price.
            per_image = prices.image_price(size, quality)
            output_tokens = math.floor(per_image * n / prices.tokens.image_output * 1e6 * 0.95)
            text_tokens = max(1, estimate_text_tokens(body["prompt"]) * 3 // 4)
            image_tokens = sum(_input_tokens(d) for _, d in files or [])
            result["usage"] = {
                "input_tokens": text_tokens + image_tokens,
                "output_tokens": output_tokens,
                "total_tokens": text_tokens + image_tokens + output_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
            }
        return result


FILES = "__files__"


def _parse_form(raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body: its text fields (``n`` as a number) and, under
    ``__files__``, its files as (field name, bytes)."""
    from .edits import parse_multipart

    text, files = parse_multipart(raw) or ({}, [])
    out: dict[str, Any] = {FILES: files}
    for key, value in text.items():
        numeric = key in ("n", "output_compression", "partial_images") and value.isdigit()
        out[key] = int(value) if numeric else value
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


def _input_tokens(data: bytes) -> int:
    """Billed input tokens of an input image: below the list estimate, as a real API is."""
    from PIL import Image

    from .edits import input_image_tokens

    with contextlib.suppress(OSError), Image.open(io.BytesIO(data)) as img:
        return int(input_image_tokens(*img.size) * 0.9)
    return 0


def signature(picture: Any) -> int:
    """A 64-bit average hash of a picture: the same for its downscaled copies."""
    small = picture.convert("L").resize((8, 8))
    pixels = list(small.tobytes())  # 64 grey levels (getdata is deprecated in Pillow 13)
    mean = sum(pixels) / len(pixels)
    return sum(1 << i for i, p in enumerate(pixels) if p > mean)


def _judge_inputs(body: dict[str, Any]) -> tuple[str, Any]:
    """(rubric text, decoded PIL image or None) from a chat request."""
    from PIL import Image

    texts, image = [], None
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and message.get("role") == "user":
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                texts.append(re.sub(r"^\s*rubric:\s*", "", str(part.get("text") or ""), flags=re.I))
            url = (
                (part.get("image_url") or {}).get("url")
                if part.get("type") == "image_url"
                else None
            )
            if isinstance(url, str) and url.startswith("data:") and "," in url:
                with contextlib.suppress(ValueError, OSError):
                    raw = base64.b64decode(url.split(",", 1)[1])
                    image = Image.open(io.BytesIO(raw))
                    image.load()
    return " ".join(texts), image


def _nearest(known: dict[int, str], image: Any) -> str | None:
    mine = signature(image)
    best = min(known, key=lambda s: (s ^ mine).bit_count(), default=None)
    if best is None or (best ^ mine).bit_count() > 10:
        return None
    return known[best]


def _error(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


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


def _make_handler(server: FakeImagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pytest-imagegen-fake/1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send_json(
            self, status: int, payload: Any, headers: dict[str, str] | None = None
        ) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _read_json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "")
            if "multipart/form-data" in content_type:
                return _parse_form(raw)
            try:
                return json.loads(raw or b"null")
            except ValueError:
                return _INVALID

        def do_GET(self) -> None:
            if self.path == "/_fake/stats":
                self._send_json(200, server.stats())
                return
            if self.path.startswith("/v1/files/"):
                found = server.get_file(self.path.rsplit("/", 1)[-1])
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
            body = self._read_json()
            if self.path.startswith("/_fake/"):
                self._control(self.path[len("/_fake/") :], body)
                return
            route = self.path.split("?", 1)[0].rstrip("/")
            if route not in ("/v1/images/generations", "/v1/images/edits", "/v1/chat/completions"):
                self._send_json(404, _error(f"Unknown path {self.path}", "invalid_request_error"))
                return
            chat = route == "/v1/chat/completions"
            auth = self.headers.get("Authorization", "")
            key = auth[7:] if auth.startswith("Bearer ") else ""
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
                    "path": self.path,
                    "body": _loggable(body),
                    "api_key": key,
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
                self._generation(body, key, chat)
            finally:
                with server._lock:
                    server.active -= 1

        def _generation(self, body: Any, key: str, chat: bool = False) -> None:
            failure = server._next_failure()
            delay = server.latency + float((failure or {}).get("delay", 0))
            if delay:
                time.sleep(delay)
            if failure and "raw" in failure:
                data = str(failure["raw"]).encode("utf-8")
                self.send_response(int(failure.get("status", 200)))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if failure and failure.get("drop"):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if failure and failure.get("status"):
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
                return
            if not key:
                self._send_json(401, _error(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth.", "invalid_request_error", None, "missing_api_key"))  # fmt: skip
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
            files = body.pop(FILES, None) if isinstance(body, dict) else None
            if self.path.split("?", 1)[0].rstrip("/") == "/v1/images/edits":
                problem = _edit_problem(body, files)
                if problem:
                    self._send_json(*problem)
                    return
            problem = server.validate(body)
            if problem:
                self._send_json(*problem)
                return
            base = f"http://{self.headers.get('Host') or f'{server.host}:{server.port}'}"
            response = server.generate(body, base, files)
            if failure and "usage" in failure:  # e.g. a billing surprise: usage above list price
                response["usage"] = failure["usage"]
            self._send_json(200, response)

        def _control(self, action: str, body: Any) -> None:
            body = body if isinstance(body, dict) else {}
            if action == "inject":
                server.inject(*body.get("failures", []))
            elif action == "reset":
                server.reset()
            elif action == "config":
                for key in ("latency", "seed", "api_key", "max_inflight", "rate_limit"):
                    if key in body:
                        setattr(server, key, body[key])
            else:
                self._send_json(404, _error(f"Unknown control {action}", "invalid_request_error"))
                return
            self._send_json(200, {"ok": True})

    return Handler


_INVALID = object()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_imagegen.fakeserver",
        description="OpenAI-compatible fake images server for tests (loopback only by default).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before each answer"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="changes every picture (simulates a model update)"
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this Bearer key (default: any non-empty key)"
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        metavar="K",
        help="answer 429 (Retry-After) to image requests beyond K in flight",
    )
    parser.add_argument(
        "--rate-limit",
        default=None,
        metavar="N/min",
        help="answer 429 (Retry-After) beyond N images per minute",
    )
    args = parser.parse_args(argv)
    from .limiter import parse_rate

    server = FakeImagesServer(
        args.host,
        args.port,
        latency=args.latency,
        seed=args.seed,
        api_key=args.api_key,
        max_inflight=args.max_inflight,
        rate_limit=parse_rate(args.rate_limit),
    )
    print(f"fake images server listening on {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
