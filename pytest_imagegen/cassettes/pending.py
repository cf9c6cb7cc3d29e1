"""Paid answers whose cassette could not be written, kept for the next run (SPEC §12).

``<rootdir>/.imagegen/pending/<sha256 of the cassette path>.yaml`` holds the whole
cassette with its images inline. The next run that would record the cassette
finds it (same request fingerprint), writes the real cassette from it and replays
it: the request is not paid for twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..api.locks import private_dir
from .files import atomic_write
from .format import read_fingerprint


def pending_path(pending_dir: Path, cassette: Path) -> Path:
    digest = hashlib.sha256(str(cassette.resolve()).encode("utf-8")).hexdigest()[:32]
    return pending_dir / f"{digest}.yaml"


def keep_pending(pending_dir: Path, cassette: Path, text: str) -> Path:
    path = pending_path(private_dir(pending_dir), cassette)
    atomic_write(path, text.encode("utf-8"))
    return path


def find_pending(pending_dir: Path | None, cassette: Path, fingerprint: str) -> Path | None:
    """The kept answer for ``cassette`` if it answers the request with ``fingerprint``."""
    if pending_dir is None:
        return None
    path = pending_path(pending_dir, cassette)
    return path if path.is_file() and read_fingerprint(path) == fingerprint else None
