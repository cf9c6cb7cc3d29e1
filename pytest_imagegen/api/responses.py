"""What an images call gave: decoded images, usage, and the exchanges to record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UNREADABLE, APIError


@dataclass
class Exchange:
    """One HTTP exchange as it is recorded in a cassette (the answer already read).

    ``body`` is the request body as matched and stored: canonical JSON text, or an edit's
    description (its text fields and files' sha256), never multipart bytes."""

    method: str
    url: str
    body: str | None
    content_type: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    content: bytes


@dataclass
class GeneratedImage:
    data: bytes
    revised_prompt: str | None = None
    source: str = "b64_json"  # or "url"
    sha256: str | None = None  # known when replayed from a (verified) image sidecar

    def __repr__(self) -> str:
        return f"GeneratedImage(<{len(self.data)} bytes>, source={self.source!r})"


@dataclass
class Generation:
    """What one successful images call returned."""

    images: list[GeneratedImage]
    usage: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)  # echoed size, quality, output_format
    attempts: int = 1
    exchanges: list[Exchange] = field(default_factory=list)  # what to record

    @property
    def revised_prompts(self) -> list[str | None]:
        return [i.revised_prompt for i in self.images]


def generation_from_payload(
    payload: Any,
    fetch: Callable[[int, Mapping[str, Any]], tuple[bytes, str]],
    *,
    attempts: int = 1,
    status: int | None = None,
) -> Generation:
    """A :class:`Generation` from a response payload; ``fetch`` gives each item's bytes."""
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise APIError(
            "images response is not an images result (no `data` list); is the base URL an "
            "OpenAI-compatible endpoint?",
            status=status,
            outcome=UNREADABLE,
        )
    images = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise APIError(f"image {index} in the response is not an object", outcome=UNREADABLE)
        revised = item.get("revised_prompt")
        data, source = fetch(index, item)
        images.append(GeneratedImage(data, revised, source))
    meta = {
        k: payload[k] for k in ("size", "quality", "output_format", "background") if k in payload
    }
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    return Generation(images=images, usage=usage, meta=meta, attempts=attempts)
