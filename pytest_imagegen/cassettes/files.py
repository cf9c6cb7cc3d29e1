"""Files we write and read back: atomic writes, masked text, untrusted names.

Everything the plugin writes goes through :func:`atomic_write` (temp file in
the same directory, then a rename: a crash never leaves half a file), and
every text file through :func:`write_text`, which masks API keys first.

Everything it reads back (cassettes, image sidecars, baselines, reports) is
untrusted: a name taken from such a file becomes a path only through
:func:`image_path`, which accepts a 64-hex sha256 and an extension from a
short allow-list and nothing else, and :func:`check_inside` refuses a file
that resolves (through a symlink) to a place outside its directory tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api.redact import Redactor

SHA256_RE = re.compile(r"[0-9a-f]{64}")
IMAGE_EXTENSIONS = ("png", "jpeg", "jpg", "webp", "gif", "bin")


class UnsafePath(ValueError):
    """A name read from a file cannot be used as a path (forged or damaged)."""


def shown(path: Path) -> str:
    """A path as users should read it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(os.path.abspath(path)) if _inside_cwd(path) else str(path)
    except (ValueError, OSError):
        return str(path)


def _inside_cwd(path: Path) -> bool:
    absolute, cwd = os.path.abspath(path), os.getcwd()
    return absolute == cwd or absolute.startswith(cwd.rstrip(os.sep) + os.sep)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; these are project files
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def writable_problem(path: Path, *, directory: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``directory`` a folder) cannot be written, or ``None``.

    Checked when the session starts, so a bad report path is a usage error instead of a
    crash at the end that loses the summary. Creates the folder, as writing would.
    """
    folder = path if directory else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write to {folder}: {exc.strerror or exc}"
    if not directory and path.is_dir():
        return f"{path} is a directory; name a file"
    return None


def write_text(path: Path, text: str, redactor: Redactor | None) -> None:
    """Atomically write a report-like text file, every API key in it masked."""
    atomic_write(path, (redactor.mask(text) if redactor else text).encode("utf-8"))


def append_text(path: Path, text: str, redactor: Redactor | None) -> None:
    """Append to a file someone else owns (``$GITHUB_STEP_SUMMARY``), keys masked."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(redactor.mask(text) if redactor else text)


def image_ref_problem(sha256: object, ext: object) -> str | None:
    """Why (sha256, ext) read from a file cannot name an image file, or ``None``."""
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        return f"sha256 {str(sha256)[:80]!r} is not 64 hex digits"
    if not isinstance(ext, str) or ext not in IMAGE_EXTENSIONS:
        return f"extension {str(ext)[:40]!r} is not one of {', '.join(IMAGE_EXTENSIONS)}"
    return None


def image_path(directory: Path, sha256: object, ext: object) -> Path:
    """``directory/<sha256>.<ext>`` for a validated name; :class:`UnsafePath` otherwise."""
    problem = image_ref_problem(sha256, ext)
    if problem:
        raise UnsafePath(problem)
    return directory / f"{sha256}.{ext}"


def check_inside(path: Path, root: Path) -> None:
    """Refuse ``path`` if it resolves (symlinks followed) outside ``root``."""
    try:
        resolved = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise UnsafePath(f"{path} cannot be resolved ({exc})") from None
    if resolved != base and base not in resolved.parents:
        raise UnsafePath(f"{path} leads outside {root} (a symlink to {resolved})")


def relative_to(base: Path, path: Path) -> str:
    """``path`` relative to ``base`` when inside it, else absolute (for messages)."""
    try:
        shown_path = os.path.relpath(path, base)
    except ValueError:
        return str(path)
    return str(path) if shown_path.startswith("..") else shown_path


def stamp(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten file from the one seen before (mtime and size), or ``None``."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
