"""Opening image bytes safely: a decompression bomb is a message, never a traceback.

Pillow refuses images above ``Image.MAX_IMAGE_PIXELS`` (about 89 million pixels;
twice that raises, above it warns). Every place that decodes an image the API
answered, a sidecar we read back or an input file goes through :func:`open_image`.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import ImagegenError

if TYPE_CHECKING:
    from PIL.Image import Image


class ImageTooLarge(ImagegenError):
    """An image whose pixel count is above Pillow's decompression-bomb limit."""


@contextlib.contextmanager
def open_image(data: bytes, what: str = "an image") -> Iterator[Image]:
    """``Image.open`` over ``data``; :class:`ImageTooLarge` instead of Pillow's bomb errors."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(
                f"{what} is too large: {exc}; it is not decoded (a decompression bomb, or a "
                "provider answering a far bigger image than asked for)"
            ) from None
