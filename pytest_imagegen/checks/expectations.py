"""Checks of the images that came back against a case's ``expect`` block (pure but for OCR).

:func:`assess` looks at every image (decodes, pixel size, format, and with
``expect.text`` what OCR reads) and says which images pass every check
(``accepted``); :func:`check_images` raises :class:`ExpectationError` listing
every unmet expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import ExpectationError, QualityError
from .expect import Expect

if TYPE_CHECKING:
    from ..api.redact import Redactor
    from .judge import Verdict


@dataclass(frozen=True)
class DecodedInfo:
    width: int
    height: int
    format: str | None


def inspect_image(data: bytes) -> DecodedInfo:
    """Decode the image header and pixels enough to trust size and format."""
    from PIL import UnidentifiedImageError

    from ..api.images import ImageTooLarge, open_image

    try:
        with open_image(data) as img:
            img.verify()
        with open_image(data) as img:
            return DecodedInfo(img.width, img.height, img.format)
    except ImageTooLarge as exc:
        raise ExpectationError(f"{exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ExpectationError(f"an image in the response cannot be decoded: {exc}") from None


@dataclass
class Assessment:
    """What the checks found, per image and for the case."""

    problems: list[str] = field(default_factory=list)  # expect.count/size/format (any image)
    quality: list[str] = field(default_factory=list)  # expect.text
    passed: list[bool] = field(default_factory=list)  # per image: every check passed
    text: list[list[str]] | None = None  # per image: the lines OCR read

    @property
    def accepted(self) -> int:
        return sum(self.passed)

    def raise_for(self, also: str | None = None) -> None:
        """Raise listing every problem; ``also``: another check's failure (e.g. drift),
        reported in the same message."""
        more = [also] if also else []
        if self.problems:
            raise ExpectationError("\n".join(self.problems + self.quality + more))
        if self.quality:
            raise QualityError("\n".join(self.quality + more))


def assess(
    expect: Expect,
    images: Sequence[bytes],
    *,
    fix: str = "",
    shas: Sequence[str | None] | None = None,
    images_dir: Path | None = None,
    redactor: Redactor | None = None,
    verdicts: Sequence[Verdict] | None = None,
    min_score: float | None = None,
) -> Assessment:
    """Check every image; ``fix`` says how to re-record when an image does not decode."""
    out = Assessment()
    if len(images) != expect.count:
        out.problems.append(f"expect.count: expected {expect.count} image(s), got {len(images)}")
    if expect.text:
        out.text = []
    for index, data in enumerate(images, start=1):
        ok = True
        try:
            info = inspect_image(data)
        except ExpectationError as exc:
            out.problems.append(
                f"image {index}: {exc} (the API answered 200 with an image that does not "
                f"decode){'; ' + fix if fix else ''}"
            )
            out.passed.append(False)
            if out.text is not None:
                out.text.append([])
            continue
        got = f"{info.width}x{info.height}"
        if expect.size is not None and got != expect.size:
            out.problems.append(f"expect.size: image {index} is {got}, expected {expect.size}")
            ok = False
        if expect.format is not None and info.format != expect.format:
            out.problems.append(
                f"expect.format: image {index} is {_fmt(info.format)}, expected {_fmt(expect.format)}"
            )
            ok = False
        if out.text is not None:
            sha = shas[index - 1] if shas is not None else None
            lines = _read(data, sha, images_dir, redactor)
            out.text.append(lines)
            ok = _check_text(expect, index, lines, out.quality) and ok
        if verdicts is not None and min_score is not None and index <= len(verdicts):
            verdict = verdicts[index - 1]
            if not verdict.passes(min_score):
                ok = False
                out.quality.append(
                    f"expect.judge: image {index} scored {verdict.score:.2f} < {min_score:.2f}: "
                    f"{verdict.reason or 'no reason given'}"
                )
        out.passed.append(ok)
    return out


def check_images(expect: Expect, images: Sequence[bytes], fix: str = "") -> Assessment:
    """Raise listing every unmet expectation; the assessment otherwise."""
    out = assess(expect, images, fix=fix)
    out.raise_for()
    return out


def _read(
    data: bytes, sha: str | None, images_dir: Path | None, redactor: Redactor | None
) -> list[str]:
    import hashlib

    from . import ocr

    if images_dir is None:
        return ocr.run_engine(data)
    return ocr.read_text(data, sha or hashlib.sha256(data).hexdigest(), images_dir, redactor)


def _check_text(expect: Expect, index: int, lines: list[str], problems: list[str]) -> bool:
    from .textmatch import match

    ok = True
    for wanted in expect.text:
        found = match(wanted, lines)
        if not found.passes(expect.text_similarity):
            ok = False
            read = " / ".join(lines) if lines else "nothing"
            problems.append(
                f"expect.text: image {index} does not say {wanted!r}: best match "
                f"{found.found or '(none)'!r}, similarity {found.similarity:.2f} < "
                f"{expect.text_similarity:.2f}; OCR read: {read!r}"
            )
    return ok


def _fmt(name: Any) -> str:
    return str(name).lower() if name else "unknown"
