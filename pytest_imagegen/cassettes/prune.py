"""``--imagegen-prune``: image sidecars (and OCR caches) that nothing references (SPEC §18).

Every re-record leaves the images it replaced behind: content-addressed files in
``<dir>/cassettes/images/`` that no cassette names any more. This module finds them,
and removes them when asked, under a simple rule: nothing any file under the roots
names is ever removed.

* References are read from every cassette (any ``*.yaml``/``*.yml`` under a
  ``cassettes`` folder: suite and marked-test cassettes, pending cassettes, judge
  data-URL sidecars, edit inputs' sha256) and every baseline (``baselines/*.json``), of
  every suite (suites of one folder share one images folder), plus any sha256 another
  YAML file under the roots mentions (a suite naming a sidecar as an edit input, a kept
  answer). Reports and the spend ledger are history, not references. A reference is a
  sha256, whatever the extension.
* A cassette or baseline that cannot be read is not guessed at: deleting is refused
  while one is damaged, naming it.
* A file written in the last minute is kept: a recording may be about to write the
  cassette that references it (images are written before their cassette).
* ``<sha256>.ocr.json`` belongs to its image: it goes when the image is unreferenced.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.errors import ImagegenError
from .files import IMAGE_EXTENSIONS
from .format import load_yaml

SHA_TOKEN = re.compile(r"[0-9a-f]{64}")
SIDECAR_RE = re.compile(r"([0-9a-f]{64})\.(" + "|".join(IMAGE_EXTENSIONS) + r"|ocr\.json)")
#: seconds during which a new unreferenced file is kept (its cassette may be on its way)
GRACE_SECONDS = 60.0
SKIP = frozenset({"node_modules", "__pycache__", "site-packages"})
FIX = "restore it from version control, or delete it and re-record; then prune again"


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


@dataclass
class Candidate:
    sha256: str
    size: int
    path: Path | None = None  # a local file
    ref: str | None = None  # an object of the image store


@dataclass
class Scan:
    references: set[str] = field(default_factory=set)
    damaged: list[str] = field(default_factory=list)  # why each unreadable file is
    sidecars: list[tuple[Path, int, float]] = field(default_factory=list)  # path, size, mtime
    sources: int = 0  # files references were read from

    def unreferenced(self, now: float | None = None) -> tuple[list[Candidate], int]:
        """Local files nothing references, and how many young ones were kept anyway."""
        now = time.time() if now is None else now
        out, young = [], 0
        for path, size, mtime in self.sidecars:
            sha = path.name[:64]
            if sha in self.references:
                continue
            if now - mtime < GRACE_SECONDS:
                young += 1
                continue
            out.append(Candidate(sha, size, path=path))
        return out, young


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIP
            and (not d.startswith(".") or d == ".imagegen")
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            yield here / name


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from _strings(value)


def _tokens(texts: Iterable[str]) -> set[str]:
    return {m for text in texts for m in SHA_TOKEN.findall(text)}


def _is_sidecar_dir(folder: Path) -> bool:
    return folder.name == "images" and folder.parent.name == "cassettes"


def scan(roots: Iterable[Path], shown: Callable[[Path], str] = str) -> Scan:
    """Read every reference under ``roots`` and list every sidecar and OCR cache."""
    out = Scan()
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in _walk(root):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            _read(path, set(path.relative_to(root).parts[:-1]), out, shown)
    return out


def _read(path: Path, parts: set[str], out: Scan, shown: Callable[[Path], str]) -> None:
    if _is_sidecar_dir(path.parent):
        if SIDECAR_RE.fullmatch(path.name) and not path.is_symlink():
            stat = path.stat()
            out.sidecars.append((path, stat.st_size, stat.st_mtime))
        return
    suffix = path.suffix.lower()
    is_baseline = suffix == ".json" and path.parent.name == "baselines"
    if suffix not in (".yaml", ".yml") and not is_baseline:
        return  # reports and the ledger are history, not references
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        if "cassettes" in parts or "baselines" in parts:
            out.damaged.append(f"{shown(path)} cannot be read ({exc.strerror or exc})")
        return
    out.sources += 1
    out.references |= _tokens([text])  # whatever it is, what it names is kept
    if suffix in (".yaml", ".yml") and "cassettes" in parts:
        try:
            data: Any = load_yaml(path, FIX)
        except ImagegenError as exc:
            out.damaged.append(str(exc))
            return
        out.references |= _tokens(_strings(data))
    elif is_baseline:
        try:
            data = json.loads(text)
        except ValueError as exc:
            out.damaged.append(f"baseline file {shown(path)} is damaged: not JSON ({exc}); {FIX}")
            return
        if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
            out.damaged.append(f"baseline file {shown(path)} is damaged: no `cases` mapping; {FIX}")
            return
        out.references |= _tokens(_strings(data))


def remote_unreferenced(
    listing: dict[str, tuple[int, float | None]], references: set[str], now: float | None = None
) -> tuple[list[Candidate], int]:
    """Objects of the image store nothing references (``ref -> (size, modified)``)."""
    now = time.time() if now is None else now
    out, young = [], 0
    for ref, (size, modified) in sorted(listing.items()):
        m = SIDECAR_RE.fullmatch(ref)
        if m is None or m.group(1) in references:
            continue
        if modified is not None and now - modified < GRACE_SECONDS:
            young += 1
            continue
        out.append(Candidate(m.group(1), size, ref=ref))
    return out, young


def _rows(found: list[Candidate], where: Callable[[Candidate], str]) -> list[str]:
    return [f"{c.sha256}  {human(c.size):>9}  {where(c)}" for c in found]


def _total(found: list[Candidate]) -> str:
    return f"{len(found)} file(s), {human(sum(c.size for c in found))}"


def run(
    mode: str,
    roots: Iterable[Path],
    write: Callable[[str], None],
    *,
    remote: Any = None,
    shown: Callable[[Path], str] = str,
) -> int:
    """List (``mode`` ``list``) or delete (``delete``, ``delete-remote``) what nothing
    references; return the exit status. ``remote``: the session's
    :class:`~.remote.Remote` when an image store is configured."""
    from .remote import StoreUnreachable

    roots = list(dict.fromkeys(roots))
    found = scan(roots, shown)
    local, young = found.unreferenced()
    total_size = sum(size for _, size, _ in found.sidecars)
    folders = {path.parent for path, _, _ in found.sidecars}
    write(
        f"roots: {', '.join(shown(r) for r in roots)}; references read from {found.sources} "
        f"file(s); {len(found.sidecars)} image file(s) and OCR cache(s), {human(total_size)}, "
        f"in {len(folders)} folder(s)"
    )
    for line in _rows(local, lambda c: shown(c.path) if c.path else ""):
        write(line)
    write(f"unreferenced: {_total(local)}")
    if young:
        write(
            f"kept: {young} unreferenced file(s) written in the last {GRACE_SECONDS:.0f} s "
            "(a recording may be about to write the cassette that references them)"
        )
    stored: list[Candidate] = []
    status = 0
    if remote is not None:
        try:
            stored, young_remote = remote_unreferenced(remote.listing(), found.references)
        except StoreUnreachable as exc:
            write(f"the image store {remote.shown} cannot be listed ({exc}): it is left alone")
            young_remote, status = 0, (1 if mode == "delete-remote" else 0)
        else:
            for line in _rows(stored, lambda c: f"{remote.shown.rstrip('/')}/{c.ref}"):
                write(line)
            write(f"unreferenced in the image store {remote.shown}: {_total(stored)}")
            if young_remote:
                write(f"kept: {young_remote} object(s) uploaded in the last minute")
    for problem in found.damaged:
        write(f"cannot tell what it references: {problem}")
    if mode == "list":
        if local or stored:
            more = " (=delete-remote: the image store's objects too)" if stored else ""
            write(f"delete them with `pytest --imagegen-prune=delete`{more}")
        return status
    if found.damaged:
        write(
            f"nothing was deleted: {len(found.damaged)} cassette or baseline file(s) cannot be "
            "read, so the images they reference are unknown; fix or delete them first"
        )
        return 1
    deleted: list[Candidate] = []
    for c in local:
        path = c.path or Path()
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            write(f"could not delete {shown(path)}: {exc.strerror or exc}")
            status = 1
            continue
        deleted.append(c)
        write(f"deleted {shown(path)} ({human(c.size)})")
    if mode == "delete-remote" and remote is not None:
        for c in stored:
            try:
                remote.delete(c.ref)
            except (StoreUnreachable, FileNotFoundError) as exc:
                write(f"could not delete {c.ref} from the image store {remote.shown}: {exc}")
                status = 1
                continue
            deleted.append(c)
            write(f"deleted {remote.shown.rstrip('/')}/{c.ref} ({human(c.size)})")
    elif stored:
        write(
            f"the image store's {len(stored)} unreferenced object(s) are kept; delete them "
            "too with `pytest --imagegen-prune=delete-remote`"
        )
    write(f"deleted: {_total(deleted)}")
    return status
