"""Where cassettes and image sidecars of suite cases live, and ids as file stems."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

_SAFE_ID = re.compile(r"[^A-Za-z0-9._=-]+")

#: longest file stem derived from an id (file systems allow 255 bytes; the temp file of an
#: atomic write adds a prefix and a suffix)
MAX_STEM = 120


def sanitize_id(case_id: str) -> str:
    """A case id as a file stem: ``app-icon[quality=low]`` -> ``app-icon_quality=low``.

    An id that leaves nothing usable (``.``, ``..``, only symbols) or is too long for a
    file name gets a short hash of the whole id instead, so every id can be stored.
    Two ids can still meet on one stem (``a`` and ``_a``): callers detect that
    (:func:`colliding`) and say so before anything is sent.
    """
    safe = _SAFE_ID.sub("_", case_id).strip("_")
    if safe.strip(".") and len(safe) <= MAX_STEM:
        return safe
    digest = hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:12]
    head = safe.strip(".")[: MAX_STEM - 13].rstrip("._-")
    return f"{head or 'case'}-{digest}"


def colliding(ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """(first id, second id, stem) for ids that would share one file stem."""
    seen: dict[str, str] = {}
    out = []
    for case_id in ids:
        stem = sanitize_id(case_id)
        if stem in seen and seen[stem] != case_id:
            out.append((seen[stem], case_id, stem))
        seen.setdefault(stem, case_id)
    return out


def suite_cassette_path(suite_path: Path, case_id: str) -> Path:
    return suite_path.parent / "cassettes" / suite_path.stem / f"{sanitize_id(case_id)}.yaml"


def suite_images_dir(suite_path: Path) -> Path:
    return suite_path.parent / "cassettes" / "images"


def owning_root(path: Path, folder: str = "cassettes") -> Path:
    """The directory holding the ``cassettes`` (or ``baselines``) folder ``path`` is in."""
    for parent in path.parents:
        if parent.name == folder:
            return parent.parent
    return path.parent
