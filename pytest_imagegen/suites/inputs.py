"""Input images of edit cases (SPEC §15): read and checked at collection.

A suite case with ``image:``/``images:`` (and optionally ``mask:``) becomes a
``POST {base}/images/edits`` (see :mod:`pytest_imagegen.api.multipart`). The
files stay where they are; each is read once here, its sha256 and pixel size
noted for the request's description and its list cost.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
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


#: largest input file (the images API takes files under 50 MB); checked before reading
MAX_INPUT_BYTES = 50 * 1024 * 1024


def load_input(
    base: Path, value: Any, project_root: Path | None = None
) -> tuple[InputFile | None, str | None]:
    """An input file named in a suite (relative to the suite file), or why it cannot be.

    It is uploaded with the request, so it must be a regular file inside ``project_root``
    (default: the suite file's folder), at most :data:`MAX_INPUT_BYTES`, and an image
    within Pillow's pixel limit (``PIL.Image.MAX_IMAGE_PIXELS``); each is checked before
    anything is read, so ``/dev/zero``, a FIFO or a decompression bomb is one error line.
    """
    if not isinstance(value, str) or not value.strip():
        return None, "must be the path of an image file, relative to the suite file"
    try:
        path = (base / value).resolve()
        root = (project_root or base).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        return None, f"{value!r}: not a usable path ({exc})"
    if path != root and root not in path.parents:
        return None, (
            f"{value!r} is outside the project ({root}): an input image is uploaded with the "
            "request, so it must be a file inside the project; copy it into the project and "
            "give its path relative to the suite file"
        )
    data, why = _read_regular(path, value)
    if data is None:
        return None, why
    return _decode(path, value, data)


def _read_regular(path: Path, value: str) -> tuple[bytes | None, str | None]:
    """The bytes of a regular file of at most :data:`MAX_INPUT_BYTES`. ``stat`` first, so a
    device or FIFO is never opened; then opened non-blocking and checked again (``fstat``),
    so one swapped in meanwhile is never read either."""
    try:
        problem = _not_regular(path.stat(), value)
        if problem:
            return None, problem
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            problem = _not_regular(os.fstat(handle.fileno()), value)
            if problem:
                return None, problem
            data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        return None, f"{value!r}: no such file (paths are relative to the suite file)"
    except OSError as exc:
        return None, f"{value!r}: cannot be read ({exc.strerror or exc})"
    return (None, _too_big(value, len(data))) if len(data) > MAX_INPUT_BYTES else (data, None)


def _not_regular(info: os.stat_result, value: str) -> str | None:
    if stat.S_ISDIR(info.st_mode):
        return f"{value!r} is a folder, not a file; give the path of an image file"
    if not stat.S_ISREG(info.st_mode):
        return (
            f"{value!r} is not a regular file (a device, FIFO or socket would be read without "
            "end); give the path of an image file"
        )
    return _too_big(value, info.st_size) if info.st_size > MAX_INPUT_BYTES else None


def _too_big(value: str, size: int) -> str:
    return (
        f"{value!r} is {size / 1024 / 1024:.1f} MB; an input image may be at most "
        f"{MAX_INPUT_BYTES // 1024 // 1024} MB: save it smaller (fewer pixels, or JPEG/WebP)"
    )


def _decode(path: Path, value: str, data: bytes) -> tuple[InputFile | None, str | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # past MAX_IMAGE_PIXELS Pillow only warns (past twice that it raises): both refused
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
                size = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS or 0
        found = _header_size(data)
        dims = f"{found[0]}x{found[1]} pixels" if found else "its pixel count"
        return None, (
            f"{value!r}: image too large: {dims} is more than Pillow's limit of {limit:,} "
            "pixels (PIL.Image.MAX_IMAGE_PIXELS); use a smaller image"
        )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, f"{value!r} is not an image Pillow can open ({exc})"
    digest = hashlib.sha256(data).hexdigest()
    return InputFile(path, value, digest, size[0], size[1], alpha), None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header, read by the format's own plugin (``Image.open``
    refuses a decompression bomb before it tells its size); ``None`` if none reads it."""
    from PIL import Image

    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        try:
            if accept is None or accept(prefix):
                with factory(io.BytesIO(data), "") as img:
                    width, height = img.size
                    return int(width), int(height)
        except Exception:  # any plugin that cannot read it: try the next one
            continue
    return None
