"""Reading text in images (``expect.text``): rapidocr 3.x on onnxruntime, cached per image sha256.

The engine is an optional extra (``pip install 'pytest-imagegen[ocr]'``, every
supported Python): its default models ship inside the rapidocr wheel and are
checked by their sha256 before use, so nothing is downloaded at run time. It is
imported and started only when a case asks for ``expect.text`` and an image
has no cached reading yet; a reading takes about a second per 1024² image on
two cores, so every reading is cached next to the image sidecars as
``<images dir>/<sha256>.ocr.json`` and a replay never reads an image twice.
The cache is untrusted input like every file we read back: its name comes
from a validated sha256 and a damaged file is read again, not trusted.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import ImagegenError
from ..cassettes.files import SHA256_RE, write_text

if TYPE_CHECKING:
    from ..api.redact import Redactor

OCR_FORMAT = 1
ENGINE = "rapidocr"
#: rapidocr's settings: the shipped default models on onnxruntime, and only its errors logged
ENGINE_PARAMS = {"Global.log_level": "error"}
INSTALL = "pip install 'pytest-imagegen[ocr]'"
_engine: Any = None
_lock = threading.Lock()


class OCRUnavailable(ImagegenError):
    """``expect.text`` needs the OCR extra, which is not installed."""


def cache_path(images_dir: Path, sha256: str) -> Path:
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256[:80]!r}")
    return images_dir / f"{sha256}.ocr.json"


def cached(images_dir: Path, sha256: str) -> list[str] | None:
    """The cached reading of an image, or ``None`` (missing or damaged: read again)."""
    path = cache_path(images_dir, sha256)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lines = data.get("lines") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("sha256") != sha256
        or not isinstance(lines, list)
        or not all(isinstance(line, str) for line in lines)
    ):
        return None
    return list(lines)


def engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ENGINE)
    except PackageNotFoundError:
        return "?"


def _get_engine() -> Any:
    global _engine
    with _lock:
        if _engine is None:
            try:
                import onnxruntime  # noqa: F401  (rapidocr's engine, not a dependency of it)
                from rapidocr import RapidOCR
            except ImportError as exc:
                raise OCRUnavailable(
                    f"expect.text needs the OCR engine {ENGINE} with onnxruntime, which is not "
                    f"installed ({exc}); install it with `{INSTALL}` (or record the readings "
                    "on a machine that has it: they are cached next to the images and replayed "
                    "without it)"
                ) from None
            _engine = RapidOCR(params=ENGINE_PARAMS)
        return _engine


def run_engine(data: bytes) -> list[str]:
    """Text lines the engine reads in ``data`` (top to bottom, as the engine orders them)."""
    engine = _get_engine()
    with _lock:  # one reading at a time per process: the engine is not thread-safe
        try:
            result = engine(data)
        except Exception as exc:  # the engine's own failure: a message, not its traceback
            raise ImagegenError(
                f"the OCR engine {ENGINE} failed on an image ({type(exc).__name__}: {exc}); "
                "check the image in the review page (--imagegen-html) or upgrade the engine"
            ) from None
    return [str(text) for text in getattr(result, "txts", None) or ()]


def read_text(
    data: bytes, sha256: str, images_dir: Path, redactor: Redactor | None = None
) -> list[str]:
    """The text lines of an image: from the cache, else read once and cached."""
    lines = cached(images_dir, sha256)
    if lines is not None:
        return lines
    lines = run_engine(data)
    record = {
        "format": OCR_FORMAT,
        "engine": f"{ENGINE} {engine_version()}",
        "sha256": sha256,
        "lines": lines,
    }
    write_text(cache_path(images_dir, sha256), json.dumps(record, indent=1) + "\n", redactor)
    return lines
