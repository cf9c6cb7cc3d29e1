"""Checks of decoded images against a case's ``expect`` block (pure)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ExpectationError
from .suite import Expect


@dataclass(frozen=True)
class DecodedInfo:
    width: int
    height: int
    format: str | None


def inspect_image(data: bytes) -> DecodedInfo:
    """Decode the image header and pixels enough to trust size and format."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            return DecodedInfo(img.width, img.height, img.format)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ExpectationError(f"an image in the response cannot be decoded: {exc}") from None


def check_images(expect: Expect, images: Sequence[bytes], fix: str = "") -> list[DecodedInfo]:
    """Raise :class:`ExpectationError` listing every unmet expectation (``fix``: how to
    re-record, said when an image does not decode)."""
    problems: list[str] = []
    if len(images) != expect.count:
        problems.append(f"expect.count: expected {expect.count} image(s), got {len(images)}")
    infos: list[DecodedInfo] = []
    for index, data in enumerate(images, start=1):
        try:
            info = inspect_image(data)
        except ExpectationError as exc:
            problems.append(
                f"image {index}: {exc} (the API answered 200 with an image that does not "
                f"decode){'; ' + fix if fix else ''}"
            )
            continue
        infos.append(info)
        got = f"{info.width}x{info.height}"
        if expect.size is not None and got != expect.size:
            problems.append(f"expect.size: image {index} is {got}, expected {expect.size}")
        if expect.format is not None and info.format != expect.format:
            problems.append(
                f"expect.format: image {index} is {_fmt(info.format)}, expected {_fmt(expect.format)}"
            )
    if problems:
        raise ExpectationError("\n".join(problems))
    return infos


def _fmt(name: Any) -> str:
    return str(name).lower() if name else "unknown"
