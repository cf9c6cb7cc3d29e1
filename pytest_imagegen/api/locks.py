"""Cross-process locks (pytest-xdist workers, parallel sessions) on filelock.

Lock files live in the temp directory, named after the guarded file's
absolute path, so nothing but the guarded file appears in the project.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import BaseFileLock

LOCK_TIMEOUT = 60.0


def file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> BaseFileLock:
    """A lock guarding ``path`` for read-modify-write or append."""
    from filelock import FileLock

    digest = hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:24]
    return FileLock(str(Path(tempfile.gettempdir()) / f"imagegen-{digest}.lock"), timeout=timeout)
