"""Request shapes shared by every layer: sizes, and a body's parameters (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

SIZE_RE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
AUTO = "auto"


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1024x1536"`` -> ``(1024, 1536)``; ``None`` if it is not WxH."""
    m = SIZE_RE.match(size)
    return (int(m.group(1)), int(m.group(2))) if m else None


def request_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body without its prompt: what reports and the ledger show as parameters."""
    return {k: v for k, v in body.items() if k != "prompt"}


def input_image_tokens(width: int, height: int, base: int = 85, per_tile: int = 170) -> int:
    """Input tokens of one image, estimated high with the vision tile rule: scaled to fit
    2048 x 2048, then its short side to 768; ``base`` tokens plus ``per_tile`` per 512 px
    tile (85 + 170 for GPT image and gpt-4o-class models)."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    short = min(w, h)
    if short > 768:
        w, h = w * 768 / short, h * 768 / short
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return base + per_tile * tiles


MAX_PATCHES = 1536


def patch_image_tokens(width: int, height: int, multiplier: float) -> int:
    """Input tokens of one image for patch-based models (32 px patches, at most 1536, the
    image scaled down to fit), times the model's multiplier; rounded up."""
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches > MAX_PATCHES:
        scale = math.sqrt(MAX_PATCHES * 32 * 32 / (width * height))
        w, h = width * scale, height * scale
        patches = min(MAX_PATCHES, math.ceil(w / 32) * math.ceil(h / 32))
    return math.ceil(patches * multiplier)
