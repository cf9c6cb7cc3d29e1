"""Content-addressed image sidecars: each image stored once as ``<sha256>.<ext>``."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from ..api.errors import CassetteError
from .files import UnsafePath, atomic_write, check_inside, image_path, shown
from .paths import owning_root


def image_extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "bin"


class ImageStore:
    """Content-addressed image files shared by every cassette of a directory.

    The directory is ``<root>/cassettes/images``; no image is read through a
    symlink that leads outside ``<root>``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = owning_root(directory / "x")

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its reference ``<sha256>.<ext>``."""
        digest = hashlib.sha256(data).hexdigest()
        ref = f"{digest}.{image_extension(data)}"
        path = self.directory / ref
        with contextlib.suppress(OSError):
            if (
                not path.is_symlink()
                and path.stat().st_size == len(data)
                and hashlib.sha256(path.read_bytes()).hexdigest() == digest
            ):
                return ref  # identical image already stored (dedup)
        atomic_write(path, data)  # missing, or damaged: (re)written
        return ref

    def path(self, digest: object, ext: object) -> Path:
        """The file of a (validated) image reference; :class:`UnsafePath` if forged."""
        path = image_path(self.directory, digest, ext)
        check_inside(path, self.root)
        return path

    def get(self, digest: str, ext: str, *, cassette: Path, fix: str) -> bytes:
        try:
            path = self.path(digest, ext)
            data = path.read_bytes()
        except UnsafePath as exc:
            raise CassetteError(
                f"cassette {shown(cassette)} is damaged: an image reference is unsafe ({exc}); "
                f"nothing was read; delete it and {fix}"
            ) from None
        except FileNotFoundError:
            path = self.directory / f"{digest}.{ext}"
            raise CassetteError(
                f"image file {shown(path)} referenced by cassette {shown(cassette)} is missing; {fix}"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise CassetteError(
                f"image file {shown(path)} is corrupt (its sha256 does not match its name); "
                f"delete it and {fix}"
            )
        return data
