"""Server-sent events: a streamed images answer (``stream: true``) read whole (pure).

The client reads the complete stream within the exchange's deadline and size cap,
then this module splits it into events. OpenAI's image streams send
``image_generation.partial_image`` events (``partial_images`` of them per image)
and one ``image_generation.completed`` event per image, with its ``usage``
(``image_edit.*`` for edits); the Responses API sends ``response.*`` events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

EVENT_STREAM = "text/event-stream"
_BLOCK = re.compile(r"\r?\n\r?\n")
COMPLETED = ("image_generation.completed", "image_edit.completed")
PARTIAL = ("image_generation.partial_image", "image_edit.partial_image")


def looks_like_sse(text: str, content_type: str = "") -> bool:
    """An event stream by its content type, or by its first line (a cassette's body)."""
    if content_type.split(";", 1)[0].strip().lower() == EVENT_STREAM:
        return True
    head = text.lstrip()[:7]
    return head.startswith(("event:", "data:", ": ", "id:"))


def events(text: str) -> Iterator[tuple[str, Any]]:
    """``(event name, JSON data)`` of each event (``[DONE]`` and comments skipped); the name
    is the data's ``type`` when the stream names none. Raises ``ValueError`` on data that
    is not JSON."""
    for block in _BLOCK.split(text):
        name, data = "", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if not data:
            continue
        raw = "\n".join(data)
        if raw.strip() == "[DONE]":
            continue
        payload = json.loads(raw)
        if not name and isinstance(payload, Mapping):
            name = str(payload.get("type") or "")
        yield name, payload


def encode(events_: list[tuple[str, Any]]) -> bytes:
    """An event stream of ``(name, data)`` pairs, as OpenAI sends it."""
    return "".join(
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for name, data in events_
    ).encode("utf-8")


def add_usage(total: dict[str, Any] | None, usage: Any) -> dict[str, Any] | None:
    """Token counts of several completed events added up (nested details included)."""
    if not isinstance(usage, Mapping):
        return total
    out: dict[str, Any] = dict(total or {})
    for key, value in usage.items():
        if isinstance(value, Mapping):
            out[key] = add_usage(out.get(key) if isinstance(out.get(key), dict) else None, value)
        elif isinstance(value, int) and not isinstance(value, bool):
            before = out.get(key)
            out[key] = (before if isinstance(before, int) else 0) + value
        else:
            out.setdefault(key, value)
    return out
