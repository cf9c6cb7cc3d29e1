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


def input_image_tokens(width: int, height: int) -> int:
    """Input tokens of one image, estimated high with the vision tile rule: scaled to fit
    2048 x 2048, then its short side to 768; 85 tokens plus 170 per 512 px tile."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    short = min(w, h)
    if short > 768:
        w, h = w * 768 / short, h * 768 / short
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles
