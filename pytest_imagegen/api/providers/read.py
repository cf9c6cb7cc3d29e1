"""Reading any provider's 2xx answer: the images and the usage, whatever the shape (pure).

One reader for every place that reads an answer (the client, a cassette's replay,
the guard): an event stream (``stream: true``), a Gemini ``generateContent``
answer, a Responses API answer, or an Images API answer. ``fetch(index, item)``
gives the bytes of an image item ``{"b64_json": ...}`` (or ``{"url": ...}``): the
client decodes or downloads, a replay reads the cassette's image sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import UNREADABLE, APIError
from ..responses import GeneratedImage, Generation, generation_from_payload
from . import gemini, sse, toolcall

Fetch = Callable[[int, Mapping[str, Any]], tuple[bytes, str]]


def read_answer(
    content: bytes | str, content_type: str, fetch: Fetch, *, status: int | None = None
) -> Generation:
    text = content if isinstance(content, str) else content.decode("utf-8", "replace")
    if sse.looks_like_sse(text, content_type):
        return read_stream(text, fetch, status)
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        if "candidates" in payload or "promptFeedback" in payload:
            return gemini.read(payload, fetch, status)
        if payload.get("object") == "response":
            return toolcall.read(payload, fetch, status)
    return generation_from_payload(payload, fetch, status=status)


def read_stream(text: str, fetch: Fetch, status: int | None = None) -> Generation:
    """A streamed images answer: the completed events' images and their usage added up
    (each completed event bills its own image, partial images included), and how many
    partial images came before them."""
    images: list[GeneratedImage] = []
    usage: dict[str, Any] | None = None
    partials = 0
    meta: dict[str, Any] = {}
    try:
        found = list(sse.events(text))
    except ValueError:
        raise APIError(
            "the streamed answer has an event whose data is not JSON; is the base URL an "
            "OpenAI-compatible endpoint?",
            status=status,
            outcome=UNREADABLE,
        ) from None
    for name, data in found:
        if not isinstance(data, Mapping):
            continue
        if name in sse.COMPLETED:
            raw, source = fetch(len(images), data)
            images.append(GeneratedImage(raw, data.get("revised_prompt"), source))
            usage = sse.add_usage(usage, data.get("usage"))
            meta.update({k: data[k] for k in ("size", "quality", "output_format", "background")
                         if k in data})  # fmt: skip
        elif name in sse.PARTIAL:
            partials += 1
        elif name == "error" or data.get("type") == "error":
            inner = data.get("error")
            error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
            raise APIError(
                f"the stream ended with an error event: {error.get('message') or error}",
                status=status,
                outcome=UNREADABLE,
            )
        elif name == "response.completed" and isinstance(data.get("response"), Mapping):
            return toolcall.read(data["response"], fetch, status)
    if not images:
        raise APIError(
            "the streamed answer ended without an image_generation.completed event; the "
            "stream was cut short or is not an images stream",
            status=status,
            outcome=UNREADABLE,
        )
    meta["partial_images"] = partials
    meta["streamed"] = True
    return Generation(images=images, usage=usage, meta=meta)


def answer_usage(content: bytes | str) -> Any:
    """The usage of a 2xx answer without decoding its images: ``usage`` of an Images or chat
    answer, ``usageMetadata`` of a Gemini one, the completed events' usage added up of a
    stream (``None`` when there is none or it cannot be read)."""
    text = content if isinstance(content, str) else content.decode("utf-8", "replace")
    if sse.looks_like_sse(text):
        total = None
        try:
            for name, data in sse.events(text):
                if name in sse.COMPLETED and isinstance(data, Mapping):
                    total = sse.add_usage(total, data.get("usage"))
        except ValueError:
            return None
        return total
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    return payload.get("usage") if "usage" in payload else payload.get("usageMetadata")
