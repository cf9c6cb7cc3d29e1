"""An object store behind the image sidecars (SPEC §18): any fsspec URL, a local cache.

With ``imagegen_image_store = s3://bucket/prefix`` (``pip install
'pytest-imagegen[s3]'``), recording uploads each new sidecar once, as its raw bytes at
``<prefix>/<sha256>.<ext>``; a replay that does not find a sidecar in the repository
reads it from the local cache (``imagegen_image_cache``), and only when the cache lacks
it from the store, into the cache. Every byte is checked against its sha256 before it is
used or cached, so a corrupt object is refused, never replayed. A warm cache replays
offline. Cache files are written atomically (temp file + rename), so xdist workers and
parallel sessions share one cache safely.

Credentials come from the usual configuration of the file system (for S3 the standard
AWS variables, profiles and roles); the plugin never reads, prints or writes them, and a
store URL is shown without any ``user:password@`` part.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import UnsafePath, atomic_write, check_inside, image_path, shown
from .store import ImageStore, ImageUnavailable, UploadFailed, verified

if TYPE_CHECKING:
    from ..api.redact import Redactor
    from ..money.context import RunContext

INSTALL = "pip install 'pytest-imagegen[s3]'"
CACHE_ENV = "IMAGEGEN_IMAGE_CACHE"
CREDENTIALS = (
    "check the network and the store's credentials (for S3 the standard AWS variables, "
    "e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID, and AWS_ENDPOINT_URL_S3 for an S3-compatible server)"
)


def shown_url(url: str) -> str:
    """A store URL as it may be shown: without a ``user:password@`` part."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url.strip())


def default_cache(environ: Any = os.environ) -> Path:
    """``$IMAGEGEN_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/pytest-imagegen/images``, else
    ``~/.cache/pytest-imagegen/images``."""
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-imagegen" / "images"


def store_url_problem(url: str) -> str | None:
    """Why ``url`` cannot name an image store here, or ``None`` (nothing is contacted)."""
    protocol, sep, rest = url.partition("://")
    if not sep or not protocol or not rest.strip("/"):
        return f"{shown_url(url)!r} is not a URL such as s3://bucket/prefix (any fsspec URL)"
    try:
        import fsspec
    except ImportError:
        return f"the image store needs fsspec and its S3 driver: {INSTALL}"
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        extra = f" ({INSTALL})" if protocol in ("s3", "s3a") else ""
        return f"{shown_url(url)}: {str(exc).splitlines()[0][:200]}{extra}"
    return None


class StoreUnreachable(Exception):
    """The store could not be asked (network, credentials, permissions)."""


def intercepted() -> bool:
    """A vcrpy cassette is open in this process: its process-wide patches of the HTTP
    clients would refuse the store's traffic, or worse, record it into the cassette."""
    import http.client
    import sys

    if str(getattr(http.client.HTTPConnection, "__module__", "")).startswith("vcr."):
        return True
    session = getattr(sys.modules.get("aiohttp.client"), "ClientSession", None)
    return str(getattr(getattr(session, "_request", None), "__module__", "")).startswith("vcr.")


class Remote:
    """One image store of a session: an fsspec file system made on first use.

    When the store cannot be reached it is not asked again in this session (a cold cache
    of a hundred images would otherwise wait on a hundred timeouts): every later call
    fails at once with the first reason.
    """

    def __init__(self, url: str, redactor: Redactor | None = None) -> None:
        self.url = url
        self.shown = shown_url(url)
        self.redactor = redactor
        self.down: str | None = None
        self.present: set[str] = set()  # references known to be in the store
        self._fs: Any = None
        self._root = ""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Remote({self.shown!r})"

    def _reason(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())[:200] or "no detail"
        if isinstance(exc, PermissionError):
            text = f"access denied: {text}"
        reason = f"{type(exc).__name__}: {text}"
        return self.redactor.mask(reason) if self.redactor else reason

    def _call(self, action: Any) -> Any:
        if self.down is not None:
            raise StoreUnreachable(self.down)
        if intercepted():
            raise StoreUnreachable(
                "not used while a cassette records this test's HTTP calls; the images are "
                "read and uploaded before and after it"
            )
        try:
            with self._lock:
                if self._fs is None:
                    import fsspec

                    self._fs, self._root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True)
                    self._root = str(self._root).rstrip("/")
            return action(self._fs)
        except FileNotFoundError:
            raise
        except Exception as exc:  # the driver's own errors (botocore, aiohttp, ...)
            self.down = self._reason(exc)
            raise StoreUnreachable(self.down) from None

    def key(self, ref: str) -> str:
        return f"{self._root}/{ref}" if self._root else ref

    def fetch(self, ref: str) -> bytes | None:
        """The object's bytes, ``None`` when the store does not have it."""
        try:
            data: bytes = self._call(lambda fs: fs.cat_file(self.key(ref)))
        except FileNotFoundError:
            return None
        return data

    def has(self, ref: str) -> bool:
        return bool(self._call(lambda fs: fs.exists(self.key(ref))))

    def upload(self, ref: str, data: bytes) -> None:
        """Upload once: nothing is sent when the store has the object already."""
        if ref in self.present:
            return
        if not self.has(ref):
            self._call(lambda fs: fs.pipe_file(self.key(ref), data))
        self.present.add(ref)

    def listing(self) -> dict[str, tuple[int, float | None]]:
        """Reference -> (size, modification time if the store tells) of every object
        under the prefix."""

        def ls(fs: Any) -> dict[str, tuple[int, float | None]]:
            try:
                found = fs.ls(self._root or "", detail=True, refresh=True)
            except FileNotFoundError:
                return {}
            return {
                str(item["name"]).rstrip("/").rsplit("/", 1)[-1]: (
                    int(item.get("size") or 0),
                    _timestamp(item.get("LastModified") or item.get("mtime")),
                )
                for item in found
                if item.get("type") != "directory"
            }

        out: dict[str, tuple[int, float | None]] = self._call(ls)
        return out

    def delete(self, ref: str) -> None:
        self._call(lambda fs: fs.rm_file(self.key(ref)))
        self.present.discard(ref)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    stamp = getattr(value, "timestamp", None)  # a datetime
    return float(stamp()) if callable(stamp) else None


class ImageCache:
    """Images fetched from a store, on this machine (``<cache dir>/<sha256>.<ext>``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, digest: str, ext: str) -> Path:
        path = image_path(self.directory, digest, ext)
        check_inside(path, self.directory)
        return path

    def get(self, digest: str, ext: str) -> bytes | None:
        """The cached image's verified bytes; ``None`` when missing or damaged."""
        try:
            data = self.path(digest, ext).read_bytes()
        except (OSError, UnsafePath):
            return None
        return data if verified(data, digest) else None

    def put(self, digest: str, ext: str, data: bytes) -> None:
        # a cache that cannot be written only costs a download next time
        with contextlib.suppress(OSError, UnsafePath):
            atomic_write(self.path(digest, ext), data)


class RemoteImageStore(ImageStore):
    """The local sidecar folder, backed by an image store and a local cache.

    ``put`` writes the sidecar and queues it; :meth:`flush` uploads what was queued (once
    per image: nothing is sent for an object the store has), after the cassette was
    written and its vcrpy context closed (vcrpy's patches are process-wide). ``load``
    reads the sidecar, else the cache, else the store (verified, then cached). ``sync`` (a
    recording run): an image read from the local folder is uploaded too when the store
    lacks it, so a recording whose upload failed is completed by running it again.
    """

    def __init__(self, directory: Path, remote: Remote, cache: ImageCache, *, sync: bool) -> None:
        super().__init__(directory)
        self.url = remote.shown
        self.remote = remote
        self.cache = cache
        self.sync = sync
        self.queued: dict[str, bytes] = {}  # written locally, not uploaded yet

    def put(self, data: bytes) -> str:
        ref = super().put(data)
        if ref not in self.remote.present:
            self.queued[ref] = data
        return ref

    def flush(self) -> None:
        failed: list[tuple[str, str]] = []
        for ref, data in list(self.queued.items()):
            try:
                self.remote.upload(ref, data)
            except StoreUnreachable as exc:
                failed.append((ref, str(exc)))
            self.queued.pop(ref, None)
        if not failed:
            return
        refs = ", ".join(ref for ref, _ in failed)
        reason = failed[0][1]
        raise UploadFailed(
            f"image(s) {refs} could not be uploaded to the image store {self.url} ({reason}); "
            f"they are kept in {shown(self.directory)} and the cassette is saved, so nothing "
            f"is lost; {CREDENTIALS}, then run the same tests with "
            "--imagegen-record-mode=once: it uploads what the store lacks (nothing is paid again)"
        )

    def load(self, digest: str, ext: str) -> bytes:
        ref = f"{digest}.{ext}"
        try:
            data = self.local(digest, ext)
        except ImageUnavailable:  # corrupt, or a Git LFS pointer: the store's copy is used
            data = None
        if data is not None:
            if self.sync and ref not in self.remote.present and not intercepted():
                try:
                    self.remote.upload(ref, data)
                except StoreUnreachable as exc:
                    raise UploadFailed(
                        f"image {ref} is in {shown(self.directory)} but the image store "
                        f"{self.url} cannot be reached to check that it has it ({exc}); "
                        f"{CREDENTIALS}, or replay without recording (--imagegen-record-mode=none)"
                    ) from None
            return data
        data = self.cache.get(digest, ext)
        if data is not None:
            return data
        where = f"image {ref} is neither in {shown(self.directory)} nor in the cache " + shown(
            self.cache.directory
        )
        try:
            data = self.remote.fetch(ref)
        except StoreUnreachable as exc:
            raise ImageUnavailable(
                f"{where}, and the image store {self.url} cannot be reached ({exc})",
                kind="unreachable",
                advice=CREDENTIALS,
            ) from None
        if data is None:
            raise ImageUnavailable(f"{where}, nor in the image store {self.url}", kind="missing")
        if not verified(data, digest):
            import hashlib

            actual = hashlib.sha256(data).hexdigest()
            raise ImageUnavailable(
                f"image {ref} in the image store {self.url} is corrupt: its sha256 is "
                f"{actual[:16]}…, not the one in its name; it was refused (not used, not cached)",
                kind="corrupt",
                advice=f"replace the object {self.remote.key(ref)} with a good copy",
            )
        self.remote.present.add(ref)
        self.cache.put(digest, ext, data)
        return data

    def locate(self, digest: str, ext: str, *, fetch: bool = False) -> Path:
        """The local sidecar if it is there, else the cached copy (downloaded first with
        ``fetch``); else the local sidecar's path (a reader will find nothing there)."""
        local = self.directory / f"{digest}.{ext}"
        if local.is_file():
            return local
        try:
            cached = self.cache.path(digest, ext)
        except UnsafePath:
            return local
        if fetch and not cached.is_file():
            try:
                self.load(digest, ext)
            except (ImageUnavailable, UploadFailed, UnsafePath):
                return local
        return cached if cached.is_file() else local


def image_store(ctx: RunContext, directory: Path) -> ImageStore:
    """The sidecar store of ``directory`` for this session: the local folder, backed by
    ``imagegen_image_store`` when one is configured (one connection per session)."""
    s = ctx.settings
    if not s.image_store:
        return ImageStore(directory)
    remote = ctx.stores.get(s.image_store)
    if not isinstance(remote, Remote):
        remote = ctx.stores[s.image_store] = Remote(s.image_store, ctx.redactor)
    cache = ImageCache(s.image_cache or default_cache(ctx.environ))
    return RemoteImageStore(directory, remote, cache, sync=s.record_mode != "none")
