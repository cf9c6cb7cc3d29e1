"""The base64 images inside an answer, whatever its shape (pure): what the persister moves
to sidecars (``data[].b64_json`` of the Images API, every event of a stream, Gemini's
``inlineData.data``, the Responses API's ``result`` and ``partial_image_b64``).

A string is an image when it is canonical base64 (so a replay puts back the exact
text) of bytes with an image file's signature; anything else stays inline.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from .store import image_extension

MIN_CHARS = 64  # shorter strings are never images worth a file


def image_strings(content: str) -> list[tuple[str, bytes]]:
    """``(base64 text, image bytes)`` of every distinct image in ``content`` (JSON or an
    event stream), in the order they appear."""
    from ..api.providers.sse import events, looks_like_sse

    if len(content) < MIN_CHARS or not any(
        c in content for c in ('"b64_json"', '"data"', '"result"', "partial_image_b64")
    ):
        return []
    payloads: list[Any] = []
    try:
        if looks_like_sse(content):
            payloads = [data for _, data in events(content)]
        else:
            payloads = [json.loads(content)]
    except ValueError:
        return []
    found: dict[str, bytes] = {}
    for payload in payloads:
        for text in _strings(payload):
            if text in found or len(text) < MIN_CHARS or text not in content:
                continue
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                continue
            if image_extension(data) == "bin":
                continue
            if base64.b64encode(data).decode("ascii") != text:
                continue  # not canonical base64: kept inline so replay stays byte-exact
            found[text] = data
    return list(found.items())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
