"""The fake server's pictures: deterministic, photo-like, with the prompt's quoted text."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def render_picture(key: str, width: int, height: int) -> Any:
    """A deterministic landscape-like RGB picture (PIL Image) for ``key``.

    Sky gradient, a sun with glow, three layers of fractal ridges, blurred
    colour texture and sensor grain: enough structure for perceptual hashes
    to tell pictures apart and enough noise for PNGs of realistic size.
    """
    import numpy as np
    from PIL import Image

    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    w, h = width, height
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    top, bottom = rng.uniform(30, 190, 3), rng.uniform(110, 250, 3)
    img = (top * (1 - y) + bottom * y + np.zeros((1, w, 1), np.float32)).astype(np.float32)
    cx, cy, r = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.45), rng.uniform(0.04, 0.12)
    d = np.sqrt(((x - cx) * (w / h)) ** 2 + (y - cy) ** 2)
    img += np.exp(-((d / (r * 3)) ** 2)) * rng.uniform(40, 90) + (d < r) * 60.0
    xs = np.arange(w, dtype=np.float32) / w
    for layer in range(3):
        profile = np.zeros(w, np.float32)
        for octave in range(1, 7):
            phase = rng.uniform(0, 2 * np.pi, 2)
            amp = rng.uniform(0.5, 1.0) / octave**1.2
            freq = 2.0**octave
            profile += (
                amp * np.sin(xs * freq * np.pi + phase[0]) * np.cos(xs * freq * 1.7 + phase[1])
            )
        ridge = (0.45 + 0.15 * layer + rng.uniform(-0.05, 0.05) + 0.08 * profile)[None, :, None]
        colour = (rng.uniform(10, 160, 3) * (0.6 + 0.2 * layer)).astype(np.float32)
        mask = (y > ridge).astype(np.float32)
        shade = np.clip((y - ridge) * 2.5, 0, 1)
        img = (img * (1 - mask) + mask * (colour * (1 - 0.5 * shade))).astype(np.float32)
    small = rng.uniform(-24, 24, (max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
    luminance = small.mean(axis=2, keepdims=True)
    small = 0.7 * luminance + 0.3 * small + 128
    texture = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    img += np.asarray(texture, np.float32) - 128
    img += rng.normal(0, 5.0, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


QUOTED = re.compile(r'"([^"\n]{1,60})"')


def quoted_text(prompt: str) -> list[str]:
    """Text a prompt asks to show (in double quotes), drawn on the picture so OCR reads it."""
    return [m.strip() for m in QUOTED.findall(prompt) if m.strip()][:3]


def draw_captions(image: Any, lines: list[str]) -> None:
    """Each line large and legible on a white band across the middle of ``image``.

    Pillow's built-in bitmap font, scaled up with nearest-neighbour: crisp at any size
    and the same on every Pillow version.
    """
    if not lines:
        return
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    rendered = []
    for line in lines:
        left, top, right, bottom = (int(v) for v in measure.textbbox((0, 0), line, font=font))
        small = Image.new("L", (right - left + 4, bottom - top + 4), 0)
        ImageDraw.Draw(small).text((2 - left, 2 - top), line, fill=255, font=font)
        rendered.append(small)
    glyph_h = max(r.height for r in rendered)
    widest = max(r.width for r in rendered)
    scale = max(1, min((image.width - 32) // widest, (image.height // (3 * len(lines))) // glyph_h))
    band_h = sum(r.height * scale for r in rendered) + 16 * (len(rendered) + 1)
    top = (image.height - band_h) // 2
    image.paste((255, 255, 255), (0, top, image.width, top + band_h))
    y = top + 16
    for small in rendered:
        big = small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)
        image.paste((10, 10, 10), ((image.width - big.width) // 2, y), big)
        y += big.height + 16


def encode_picture(image: Any, fmt: str = "png", compression: int | None = None) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG")
    else:
        image.save(buf, PIL_FORMATS[fmt], quality=100 - (compression or 0) if compression else 90)
    return buf.getvalue()


def signature(picture: Any) -> int:
    """A 64-bit average hash of a picture: the same for its downscaled copies."""
    small = picture.convert("L").resize((8, 8))
    pixels = list(small.tobytes())  # 64 grey levels (getdata is deprecated in Pillow 13)
    mean = sum(pixels) / len(pixels)
    return sum(1 << i for i, p in enumerate(pixels) if p > mean)


def with_transparency(picture: Any) -> Any:
    """The picture as RGBA with a transparent surround (an ellipse kept opaque): what a
    ``background: transparent`` request gets."""
    import numpy as np
    from PIL import Image

    w, h = picture.size
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    alpha = ((x / 0.8) ** 2 + (y / 0.8) ** 2 <= 1.0).astype(np.uint8) * 255
    rgba = picture.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return rgba


def partial_picture(data: bytes, index: int, total: int, fmt: str) -> bytes:
    """A streamed partial image: the final picture coarser the earlier it comes."""
    from PIL import Image, ImageFilter

    with Image.open(io.BytesIO(data)) as final:
        final.load()
        radius = 2.0 * (total - index) + 1.0
        rough = final.filter(ImageFilter.GaussianBlur(radius))
    return encode_picture(rough, fmt)
