"""Multipart edit requests (``/images/edits``): their text fields, files and description.

What identifies an edit request, in the cassette and for matching, is its
*description*: the text fields as sent and each file's sha256, never the
multipart bytes, so a changed input image makes the cassette stale and names
the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

IMAGE_FIELD = "image[]"
MASK_FIELD = "mask"


def fields(body: Mapping[str, Any]) -> dict[str, str]:
    """The text fields of the multipart request, as sent (every value a string)."""
    out = {}
    for key, value in body.items():
        if key in (IMAGE_FIELD, MASK_FIELD):
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def description(
    text_fields: Mapping[str, str], image_shas: Sequence[str], mask_sha: str | None
) -> dict[str, Any]:
    """What identifies an edit request: its text fields and its files' sha256."""
    out: dict[str, Any] = dict(text_fields)
    out[IMAGE_FIELD] = list(image_shas)
    if mask_sha is not None:
        out[MASK_FIELD] = mask_sha
    return out


def parse_multipart(body: bytes) -> tuple[dict[str, str], list[tuple[str, bytes]]] | None:
    """(text fields, files as (field name, bytes)) of a multipart/form-data body, or ``None``
    if it is not one (the boundary is the body's first line)."""
    first, _, _ = body[:300].partition(b"\r\n")
    if not first.startswith(b"--") or b"form-data" not in body[:1000]:
        return None
    text: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    for part in body.split(first)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            continue
        key = name.group(1).decode("utf-8", "replace")
        if b"filename=" in head:
            files.append((key, content))
        else:
            text[key] = content.decode("utf-8", "replace")
    return text, files


def describe_multipart(body: bytes) -> dict[str, Any] | None:
    """The description of a multipart/form-data body (``None`` if it is not one)."""
    parsed = parse_multipart(body)
    if parsed is None:
        return None
    text, files = parsed
    images = [hashlib.sha256(d).hexdigest() for name, d in files if name != MASK_FIELD]
    masks = [hashlib.sha256(d).hexdigest() for name, d in files if name == MASK_FIELD]
    return description(text, images, masks[0] if masks else None)


def image_sizes(files: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
    """Pixel sizes of the files of an edit (unreadable ones count as 2048x2048: priced high)."""
    from .images import ImageTooLarge, open_image

    sizes = []
    for _, data in files:
        try:
            with open_image(data) as img:
                sizes.append(img.size)
        except (OSError, ImageTooLarge):
            sizes.append((2048, 2048))
    return sizes
