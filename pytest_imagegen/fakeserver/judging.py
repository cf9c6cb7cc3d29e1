"""The fake vision judge's inputs: the rubric and the picture of a chat request."""

from __future__ import annotations

import base64
import contextlib
import io
import re
from typing import Any

from .pictures import signature


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
