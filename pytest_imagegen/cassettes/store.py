"""Content-addressed image sidecars: each image stored once as ``<sha256>.<ext>``.

:class:`ImageStore` is the local folder ``<root>/cassettes/images``. Every reader of
sidecars (replay, the judge, drift and baselines, the review page) gets bytes through
one, by reference (``<sha256>.<ext>``), verified by sha256 before use. With an image
store configured (``imagegen_image_store``), :mod:`.remote` adds an object store and a
local cache behind the same interface (:func:`.remote.image_store` picks one).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
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


class ImageUnavailable(CassetteError):
    """An image cannot be had: missing everywhere it was looked for, or corrupt.

    The message says what and where; ``advice`` what to try besides the caller's own fix
    (a cassette's re-record command, a baseline's update command), which the caller adds."""

    def __init__(self, message: str, *, kind: str, advice: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # missing | corrupt | lfs (a Git LFS pointer) | unreachable
        self.advice = advice


class UploadFailed(CassetteError):
    """Images were kept locally but could not be uploaded to the image store (the message
    says what to do)."""


#: what a file checked out without Git LFS holds instead of the image
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def verified(data: bytes, digest: str) -> bool:
    return hashlib.sha256(data).hexdigest() == digest


class ImageStore:
    """Content-addressed image files shared by every cassette of a directory.

    The directory is ``<root>/cassettes/images``; no image is read through a
    symlink that leads outside ``<root>``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = owning_root(directory / "x")
        self.url: str | None = None  # the image store behind the folder (shown form)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({shown(self.directory)!r})"

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its reference ``<sha256>.<ext>``."""
        digest = hashlib.sha256(data).hexdigest()
        ref = f"{digest}.{image_extension(data)}"
        path = self.directory / ref
        with contextlib.suppress(OSError):
            if (
                not path.is_symlink()
                and path.stat().st_size == len(data)
                and verified(path.read_bytes(), digest)
            ):
                os.utime(path)  # just referenced again: --imagegen-prune's grace counts anew
                return ref  # identical image already stored (dedup)
        try:
            check_inside(self.directory, self.root)  # a symlinked images folder out: refused
        except UnsafePath as exc:
            raise CassetteError(
                f"image {ref} was not stored: {exc}; nothing is written outside the suite's "
                "folder (replace the symlink by a real folder)"
            ) from None
        atomic_write(path, data)  # missing, or damaged: (re)written
        return ref

    def flush(self) -> None:
        """Upload what ``put`` stored to the image store behind the folder (none here);
        :class:`UploadFailed` when that fails. Call it outside any vcrpy cassette."""

    def path(self, digest: object, ext: object) -> Path:
        """The file of a (validated) image reference; :class:`UnsafePath` if forged."""
        path = image_path(self.directory, digest, ext)
        check_inside(path, self.root)
        return path

    def local(self, digest: str, ext: str) -> bytes | None:
        """The verified bytes of the local sidecar; ``None`` when missing.

        :class:`UnsafePath` for a forged name; :class:`ImageUnavailable` when corrupt."""
        path = self.path(digest, ext)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if not verified(data, digest):
            if data.startswith(LFS_POINTER):
                raise ImageUnavailable(
                    f"image file {shown(path)} is a Git LFS pointer, not the image: fetch the "
                    "images with `git lfs pull` (and install Git LFS: `git lfs install`)",
                    kind="lfs",
                )
            raise ImageUnavailable(
                f"image file {shown(path)} is corrupt (its sha256 does not match its name)",
                kind="corrupt",
            )
        return data

    def load(self, digest: str, ext: str) -> bytes:
        """The image's verified bytes, or :class:`ImageUnavailable` (:class:`UnsafePath` if
        the name is forged)."""
        data = self.local(digest, ext)
        if data is None:
            raise ImageUnavailable(
                f"image file {shown(self.directory / f'{digest}.{ext}')} is missing", kind="missing"
            )
        return data

    def locate(self, digest: str, ext: str, *, fetch: bool = False) -> Path:
        """A file holding the image, for readers of paths (the review page): the local
        sidecar (this store: whether or not it exists)."""
        return self.directory / f"{digest}.{ext}"

    def get(self, digest: str, ext: str, *, cassette: Path, fix: str) -> bytes:
        """The bytes of an image a cassette references; errors name the cassette."""
        try:
            return self.load(digest, ext)
        except UnsafePath as exc:
            raise CassetteError(
                f"cassette {shown(cassette)} is damaged: an image reference is unsafe ({exc}); "
                f"nothing was read; delete it and {fix}"
            ) from None
        except UploadFailed:
            raise
        except ImageUnavailable as exc:
            if exc.kind == "missing" and self.url is None:
                path = self.directory / f"{digest}.{ext}"
                raise CassetteError(
                    f"image file {shown(path)} referenced by cassette {shown(cassette)} is "
                    f"missing; {fix}"
                ) from None
            if exc.kind == "lfs":
                raise CassetteError(f"{exc} (referenced by cassette {shown(cassette)})") from None
            if exc.kind == "corrupt" and self.url is None:
                raise CassetteError(f"{exc}; delete it and {fix}") from None
            advice = f"{exc.advice}, or " if exc.advice else ""
            raise CassetteError(
                f"{exc} (referenced by cassette {shown(cassette)}); {advice}{fix}"
            ) from None
