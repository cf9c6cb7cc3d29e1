"""Previews and difference images for the review page (Pillow; SPEC §17).

The page shows previews (WebP, at most 512 px on the long edge) linked to the
full image instead of copies of the full images, so the page folder stays a
small fraction of the images' size. A preview is named after the image's
sha256 and made once; a difference image after the two images it compares.

Only content-addressed images are read: a file whose name is not
``<sha256>.<ext>``, that is a symlink, or whose bytes do not hash to its name
is never read into the page (a forged baseline cannot smuggle
``/proc/self/environ`` in).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cassettes.files import IMAGE_EXTENSIONS, SHA256_RE, atomic_write

PREVIEW_EDGE = 512
PREVIEW_QUALITY = 80
#: a pixel counts as changed when a channel differs by more than this (0-255)
CHANGED_LEVEL = 24
#: differences are brightened this much so small ones show
DIFF_GAIN = 3


@dataclass(frozen=True)
class Preview:
    name: str  # file name inside the previews folder
    width: int  # of the full image
    height: int
    bytes: int  # of the full image


@dataclass(frozen=True)
class Difference:
    name: str
    changed: float  # share of pixels that changed visibly (0..1)
    resized: bool  # the two images differ in pixel size (the baseline was scaled)


def image_name(path: str | Path) -> tuple[str, str] | None:
    """``(sha256, ext)`` when ``path`` names a content-addressed image, else ``None``."""
    digest, _, ext = Path(path).name.partition(".")
    if not SHA256_RE.fullmatch(digest) or ext not in IMAGE_EXTENSIONS:
        return None
    return digest, ext


class Previews:
    """The previews folder of one page (``<page dir>/previews``)."""

    def __init__(self, page_dir: Path) -> None:
        self.directory = page_dir / "previews"
        self._verified: dict[str, bytes | None] = {}
        self._previews: dict[str, Preview | None] = {}
        self.image_bytes = 0  # full images shown (each counted once)

    def _read(self, path: str | Path) -> bytes | None:
        """The bytes of a content-addressed image, verified; ``None`` when it is not one."""
        named = image_name(path)
        if named is None:
            return None
        digest = named[0]
        if digest not in self._verified:
            source, data = Path(path), None
            try:
                if not source.is_symlink() and source.is_file():
                    data = source.read_bytes()
                    if hashlib.sha256(data).hexdigest() != digest:
                        data = None
            except OSError:
                data = None
            self._verified[digest] = data
            if data is not None:
                self.image_bytes += len(data)
        return self._verified[digest]

    def preview(self, path: str | Path) -> Preview | None:
        """A preview of the image at ``path`` (made once), ``None`` if it cannot be shown."""
        named = image_name(path)
        if named is None:
            return None
        digest = named[0]
        if digest not in self._previews:
            self._previews[digest] = self._make_preview(path, digest)
        return self._previews[digest]

    def _make_preview(self, path: str | Path, digest: str) -> Preview | None:
        data = self._read(path)
        if data is None:
            return None
        name = f"{digest}.webp"
        image = _open(data)
        if image is None:
            return None
        width, height = image.size
        target = self.directory / name
        if not target.is_file():
            image.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
            atomic_write(target, _webp(image))
        return Preview(name, width, height, len(data))

    def difference(self, baseline: str | Path, current: str | Path) -> Difference | None:
        """A per-pixel difference image of two images (the baseline scaled to the current
        one's size when they differ), ``None`` when either cannot be read."""
        from PIL import ImageChops

        a, b = image_name(baseline), image_name(current)
        if a is None or b is None or a[0] == b[0]:
            return None
        old, new = self._read(baseline), self._read(current)
        old_image, new_image = (_open(old) if old else None), (_open(new) if new else None)
        if old_image is None or new_image is None:
            return None
        resized = old_image.size != new_image.size
        if resized:
            old_image = old_image.resize(new_image.size)
        diff = ImageChops.difference(old_image.convert("RGB"), new_image.convert("RGB"))
        levels = diff.convert("L")
        histogram = levels.histogram()
        changed = sum(histogram[CHANGED_LEVEL + 1 :]) / max(1, sum(histogram))
        name = f"diff-{a[0][:20]}-{b[0][:20]}.webp"
        target = self.directory / name
        if not target.is_file():
            shown = diff.point(lambda v: min(255, v * DIFF_GAIN))
            shown.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
            atomic_write(target, _webp(shown))
        return Difference(name, round(changed, 4), resized)

    def thumbnail_bytes(self, path: str | Path, edge: int = 256) -> bytes | None:
        """A small JPEG of the image (pytest-html extras), ``None`` if it cannot be read."""
        data = self._read(path)
        image = _open(data) if data else None
        if image is None:
            return None
        image.thumbnail((edge, edge))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=75)
        return out.getvalue()


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened.convert("RGBA") if "A" in opened.getbands() else opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return image


def _webp(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=PREVIEW_QUALITY, method=4)
    return out.getvalue()


def folder_bytes(directory: Path) -> int:
    """Bytes of every file under ``directory`` (the page and its assets)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
