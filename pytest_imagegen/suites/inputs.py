"""Image edits (SPEC §15): input images and masks, the multipart request, what it costs.

A suite case with ``image:``/``images:`` (and optionally ``mask:``) becomes a
``POST {base}/images/edits`` with ``multipart/form-data``: the text fields
(model, prompt, n, size, quality, params) and the files ``image[]`` (and
``mask``). The files stay where they are. What identifies the request, in the
cassette and for matching, is its *description*: the text fields as sent and
each file's sha256, never the multipart bytes, so a changed input image makes
the cassette stale and names the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_FIELD = "image[]"
MASK_FIELD = "mask"
CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
}


@dataclass(frozen=True)
class InputFile:
    """An input image (or mask) of an edit case, as read at collection."""

    path: Path
    shown: str  # as written in the suite (relative to it)
    sha256: str
    width: int
    height: int
    has_alpha: bool

    def read(self) -> bytes:
        return self.path.read_bytes()

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.path.suffix.lower().lstrip("."), "image/png")


def load_input(base: Path, value: Any) -> tuple[InputFile | None, str | None]:
    """An input file named in a suite (relative to the suite file), or why it cannot be."""
    if not isinstance(value, str) or not value.strip():
        return None, "must be the path of an image file, relative to the suite file"
    path = (base / value).resolve()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"{value!r}: no such file (paths are relative to the suite file)"
    except OSError as exc:
        return None, f"{value!r}: cannot be read ({exc.strerror})"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            size = img.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return None, f"{value!r} is not an image Pillow can open ({exc})"
    digest = hashlib.sha256(data).hexdigest()
    return InputFile(path, value, digest, size[0], size[1], alpha), None


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
    from PIL import Image

    sizes = []
    for _, data in files:
        try:
            with Image.open(io.BytesIO(data)) as img:
                sizes.append(img.size)
        except OSError:
            sizes.append((2048, 2048))
    return sizes


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
