"""Cross-process locks and the project's state folder (SPEC §12).

Lock and state files live in the project, ``<rootdir>/.imagegen/`` (created
private to the user, 0700), never in a shared temp directory where another
local user could pre-create or hold them: ``locks/`` holds the file locks
(named after the guarded file's path), ``sessions/<id>/`` one test session's
shared state (budget, limiter, prefetch errors) with the pid of the process
that owns it. A session removes what it made when it ends; a session whose
process died (SIGKILL) is reclaimed by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filelock import BaseFileLock

LOCK_TIMEOUT = 60.0
STATE_DIR = ".imagegen"


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can use (created 0700 when missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        path.chmod(0o700)  # made by someone before us, open to others: ours alone now
    return path


def lock_path(path: Path, root: Path) -> Path:
    digest = hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:24]
    return private_dir(root / "locks") / f"{digest}.lock"


_made: dict[Path, set[Path]] = {}
_made_lock = threading.Lock()


def file_lock(path: Path, root: Path, timeout: float = LOCK_TIMEOUT) -> BaseFileLock:
    """A lock guarding ``path`` (read-modify-write, append, one recording) for every process
    of every session of the project; its file lives under ``root`` (``.imagegen``)."""
    lock = lock_path(path, root)
    with _made_lock:
        _made.setdefault(root, set()).add(lock)
    return _lock_class()(str(lock), timeout=timeout, mode=0o600)


def _lock_class() -> type[BaseFileLock]:
    from filelock import FileLock

    class FolderSafeLock(FileLock):
        """A lock whose folder another session may remove when it ends (it was empty):
        made again before each try."""

        def _acquire(self) -> None:
            for _ in range(5):
                os.makedirs(os.path.dirname(self.lock_file), mode=0o700, exist_ok=True)
                try:
                    super()._acquire()
                except FileNotFoundError:
                    continue
                fd = getattr(self._context, "lock_file_fd", None)
                if fd is not None and not _still_named(fd, self.lock_file):
                    # Another session removed the lock file between our open and our lock
                    # (remove_locks): a lock on that inode guards nothing, since the next
                    # process creates a new file. Let go; the next try locks the file there
                    # now (newer filelock releases check this themselves; the floor, 3.12, does not).
                    self._release()
                return

    return FolderSafeLock


def _still_named(fd: int, path: str) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def remove_locks(folders: bool = True) -> None:
    """At session end: remove the lock files this process made that nobody holds, and with
    ``folders`` (the xdist controller, which ends last) the empty ``locks`` folders."""
    from filelock import FileLock, Timeout

    with _made_lock:
        made = dict(_made)
        _made.clear()
    for root, paths in made.items():
        for path in paths:
            lock = FileLock(str(path), timeout=0, mode=0o600)
            with contextlib.suppress(Timeout, OSError), lock:
                path.unlink(missing_ok=True)
        if folders:
            with contextlib.suppress(OSError):
                (root / "locks").rmdir()  # only when empty


def create_private(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, failing if it exists (O_EXCL), readable by us only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def replace_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` (a state file) through an unpredictable temp file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def new_session_dir(root: Path, session_id: str) -> Path:
    """``<root>/sessions/<id>``, owned by this process (its pid noted for reclaiming)."""
    reclaim(root)
    folder = root / "sessions" / session_id
    private_dir(folder.parent)
    folder.mkdir(mode=0o700)
    create_private(folder / "owner.json", json.dumps({"pid": os.getpid()}))
    return folder


def reclaim(root: Path) -> list[Path]:
    """Remove the session folders of processes that no longer run (a killed run)."""
    removed = []
    sessions = root / "sessions"
    for folder in sessions.iterdir() if sessions.is_dir() else []:
        owner: Any = None
        with contextlib.suppress(OSError, ValueError):
            owner = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
        pid = owner.get("pid") if isinstance(owner, dict) else None
        if isinstance(pid, int) and alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def remove_session_dir(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # sessions/, when it was the last one
