"""The fake server's streamed answers (``stream: true``): server-sent events as OpenAI
sends them, ``partial_images`` partial images before each image's completed event.

Each completed event carries that image's ``usage``; a partial image is billed 100
image output tokens (OpenAI image generation guide, "Streaming"), so the usage of an
image includes its partial images, as the real API's does.
"""

from __future__ import annotations

import base64
from typing import Any

from ..api.providers import sse
from .pictures import partial_picture

PARTIAL_TOKENS = 100


def add_partial_tokens(response: dict[str, Any], partials: int) -> None:
    """The partial images' output tokens, in the answer's usage (before a test's override)."""
    usage = response.get("usage")
    if not partials or not isinstance(usage, dict):
        return
    extra = partials * PARTIAL_TOKENS * len(response.get("data") or [])
    usage["output_tokens"] = int(usage.get("output_tokens") or 0) + extra
    usage["total_tokens"] = int(usage.get("total_tokens") or 0) + extra
    details = usage.get("output_tokens_details")
    if isinstance(details, dict):
        details["image_tokens"] = int(details.get("image_tokens") or 0) + extra


def _split(usage: Any, n: int) -> list[dict[str, Any]]:
    """One image's share of the usage for each of ``n`` completed events (adding up)."""
    if not isinstance(usage, dict):
        return [{} for _ in range(n)]

    def share(value: Any, index: int) -> Any:
        if isinstance(value, dict):
            return {k: share(v, index) for k, v in value.items()}
        if isinstance(value, int) and not isinstance(value, bool):
            return value // n + (value % n if index == n - 1 else 0)
        return value

    return [share(usage, i) for i in range(n)]


def events(body: dict[str, Any], response: dict[str, Any], endpoint: str) -> bytes:
    """The event stream of an images ``response`` for a streamed request."""
    prefix = "image_generation" if endpoint == "generations" else "image_edit"
    partials = int(body.get("partial_images") or 0)
    fmt = str(response.get("output_format") or "png")
    common = {
        "background": response.get("background") or "opaque",
        "created_at": int(response.get("created") or 1_700_000_000),
        "output_format": fmt,
        "quality": response.get("quality") or "auto",
        "size": response.get("size") or "auto",
    }
    items = response.get("data") or []
    usages = _split(response.get("usage"), max(1, len(items)))
    out: list[tuple[str, Any]] = []
    for item, usage in zip(items, usages, strict=False):
        final = str(item.get("b64_json") or "")
        raw = base64.b64decode(final)
        for index in range(partials):
            data = base64.b64encode(partial_picture(raw, index, partials, fmt)).decode("ascii")
            name = f"{prefix}.partial_image"
            out.append((name, {"type": name, "b64_json": data, **common,
                               "partial_image_index": index}))  # fmt: skip
        name = f"{prefix}.completed"
        out.append((name, {"type": name, "b64_json": final, **common, "usage": usage}))
    return sse.encode(out)
