"""Input images of edit cases (SPEC §15): read and checked at collection.

A suite case with ``image:``/``images:`` (and optionally ``mask:``) becomes a
``POST {base}/images/edits`` (see :mod:`pytest_imagegen.api.multipart`). The
files stay where they are; each is read once here, its sha256 and pixel size
noted for the request's description and its list cost.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
