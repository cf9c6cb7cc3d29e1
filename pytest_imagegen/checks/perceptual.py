"""Perceptual hashes, baseline files and drift comparison (pure; imagehash/Pillow lazily).

A baseline file ``<suite dir>/baselines/<suite stem>.json`` holds, per case id,
the accepted images: sha256, width, height, acceptance time, the prompt's
sha256 and one hex hash per algorithm. Its header names the algorithms with
their parameters and the Pillow/imagehash versions that computed the hashes;
when those differ from the running ones, hashes are recomputed from the stored
images instead of being compared across versions.

Distance of a current image = per algorithm, the minimum Hamming distance to
any accepted image of the case. An image byte-identical to an accepted one is
distance 0 without being decoded.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.errors import DriftError
from ..api.images import open_image
from ..cassettes.files import UnsafePath, check_inside, image_path, image_ref_problem, shown
from ..cassettes.store import ImageStore, ImageUnavailable

HEX_RE = re.compile(r"[0-9a-f]{1,256}")

BASELINE_FORMAT = 1
#: imagehash functions and the parameters pytest-imagegen uses for them
ALGORITHMS: dict[str, dict[str, int]] = {
    "phash": {"hash_size": 8},
    "colorhash": {"binbits": 3},
    "ahash": {"hash_size": 8},
    "dhash": {"hash_size": 8},
    "whash": {"hash_size": 8},
}
DEFAULT_ALGORITHMS = ("phash", "colorhash")


def baseline_path(suite_path: Path) -> Path:
    return suite_path.parent / "baselines" / f"{suite_path.stem}.json"


def library_versions() -> dict[str, str]:
    import imagehash
    import PIL

    return {"imagehash": str(imagehash.__version__), "pillow": str(PIL.__version__)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of the same algorithm."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def compute_hashes(data: bytes, algorithms: Iterable[str]) -> tuple[dict[str, str], int, int]:
    """Hex hash per algorithm, and the image's width and height (decodes once)."""
    import imagehash

    with open_image(data, "an image to hash") as opened:
        image = opened.convert("RGB")
    out: dict[str, str] = {}
    for name in algorithms:
        fn = getattr(imagehash, name)
        out[name] = str(fn(image, **ALGORITHMS[name]))
    return out, image.width, image.height


def image_size(data: bytes) -> tuple[int, int]:
    with open_image(data, "an image to accept") as opened:
        return opened.width, opened.height


@dataclass
class BaselineImage:
    sha256: str
    ext: str
    width: int
    height: int
    accepted: str
    hashes: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "ext": self.ext,
            "hashes": dict(sorted(self.hashes.items())),
            "height": self.height,
            "sha256": self.sha256,
            "width": self.width,
        }


def accept_images(
    images: Sequence[bytes], algorithms: Iterable[str], store: Any, *, hashes: bool = True
) -> list[BaselineImage]:
    """Baseline entries for ``images`` (``store.put`` keeps a copy to recompute from later).

    With ``hashes=False`` the (CPU-heavy) hashes are left for :func:`complete_hashes`, which
    the session runs once at the end, on the xdist controller: workers then never import
    imagehash/scipy just to accept what they recorded.
    """
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    algos = hash_algorithms(algorithms)
    out = []
    for data in images:
        ref = store.put(data)
        digest, ext = ref.split(".", 1)
        if hashes:
            values, width, height = compute_hashes(data, algos)
        else:
            values, (width, height) = {name: "" for name in algos}, image_size(data)
        out.append(BaselineImage(digest, ext, width, height, now, values))
    return out


def hash_algorithms(algorithms: Iterable[str]) -> list[str]:
    return sorted(set(DEFAULT_ALGORITHMS) | set(algorithms))


def stored_image(images_dir: Path, image: Mapping[str, Any]) -> Path:
    """The image file of a baseline entry; :class:`DriftError` if its name is forged or it
    leads (through a symlink) outside the directory holding ``baselines``/``cassettes``."""
    try:
        path = image_path(images_dir, image.get("sha256"), image.get("ext", "png"))
        check_inside(path, images_dir.parent.parent)
    except UnsafePath as exc:
        raise DriftError(
            f"baseline image reference is damaged ({exc}); nothing was read. Accept the "
            "current images again with --imagegen-update-baselines"
        ) from None
    return path


def entry_problem(image: Any) -> str | None:
    """Why one accepted-image entry of a baseline file cannot be used, or ``None``."""
    if not isinstance(image, Mapping):
        return "an image entry is not a mapping"
    problem = image_ref_problem(image.get("sha256"), image.get("ext", "png"))
    if problem:
        return problem
    hashes = image.get("hashes") or {}
    if not isinstance(hashes, Mapping):
        return "`hashes` is not a mapping"
    for name, value in hashes.items():
        if name not in ALGORITHMS:
            return f"unknown hash algorithm {str(name)[:20]!r}"
        if value and (not isinstance(value, str) or not HEX_RE.fullmatch(value)):
            return f"{name} hash {str(value)[:40]!r} is not hex"
    return None


def read_stored(store: ImageStore, image: Mapping[str, Any]) -> tuple[Path, bytes]:
    """The path and verified bytes of a baseline entry's image, through ``store`` (the
    local sidecar, else the image store's cache); :class:`ImageUnavailable` if it cannot
    be had, :class:`DriftError` if its name is forged."""
    path = stored_image(store.directory, image)
    try:
        return path, store.load(str(image["sha256"]), str(image.get("ext", "png")))
    except UnsafePath as exc:
        raise DriftError(f"baseline image reference is damaged ({exc}); nothing was read") from None


def complete_hashes(image: dict[str, Any], store: ImageStore) -> None:
    """Fill in the empty hashes of a baseline entry from its stored image."""
    missing = [name for name, value in (image.get("hashes") or {}).items() if not value]
    if not missing:
        return
    try:
        _, data = read_stored(store, image)
    except ImageUnavailable as exc:
        raise DriftError(f"cannot hash accepted image {image.get('sha256')}: {exc}") from None
    values, _, _ = compute_hashes(data, missing)
    image["hashes"] = {**image["hashes"], **values}


@dataclass
class BaselineFile:
    """One suite's accepted images; ``outdated`` says why stored hashes cannot be trusted."""

    path: Path
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    algorithms: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    outdated: str | None = None

    @classmethod
    def load(cls, path: Path) -> BaselineFile:
        fix = "restore it from version control, or delete it and accept again with --imagegen-update-baselines"
        try:
            check_inside(path, path.parent.parent)
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except UnsafePath as exc:
            raise DriftError(f"baseline file {shown(path)} was not read: {exc}; {fix}") from None
        except (OSError, ValueError) as exc:
            raise DriftError(
                f"baseline file {shown(path)} is damaged: cannot be read ({exc}); {fix}"
            ) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("cases"), dict):
            raise DriftError(
                f"baseline file {shown(path)} is damaged: not a pytest-imagegen baseline "
                f"(no `cases` mapping); {fix}"
            )
        algorithms, versions = raw.get("algorithms") or {}, raw.get("versions") or {}
        if not isinstance(algorithms, dict) or not isinstance(versions, dict):
            raise DriftError(
                f"baseline file {shown(path)} is damaged: `algorithms` and `versions` must be "
                f"mappings; {fix}"
            )
        out = cls(path, cases=raw["cases"], algorithms=algorithms, versions=versions)
        out.outdated = out._why_outdated()
        return out

    def _why_outdated(self) -> str | None:
        running = library_versions()
        reasons = []
        for lib, version in sorted(running.items()):
            if self.versions.get(lib) != version:
                reasons.append(f"{lib} {self.versions.get(lib) or '?'} (running {version})")
        for name, params in self.algorithms.items():
            if name in ALGORITHMS and params != ALGORITHMS[name]:
                reasons.append(f"{name} {params} (running {ALGORITHMS[name]})")
        return ", ".join(reasons) if reasons else None

    def images(self, case_id: str) -> list[dict[str, Any]] | None:
        """The accepted images of ``case_id`` (validated), ``None`` when there are none."""
        entry = self.cases.get(case_id)
        if entry is None:
            return None
        images = entry.get("images") if isinstance(entry, dict) else None
        problem = None if isinstance(images, list) else "`images` is not a list"
        for number, image in enumerate(images or [], 1):
            problem = problem or (
                f"image {number}: {p}" if (p := entry_problem(image)) is not None else None
            )
        if problem:
            raise DriftError(
                f"baseline file {shown(self.path)} is damaged: case {case_id!r}: {problem}; "
                f"accept the current images again with `pytest --imagegen-update-baselines`"
            )
        return list(images) if images else None

    def prompt_sha256(self, case_id: str) -> str | None:
        """The sha256 of the prompt the accepted images of ``case_id`` were made from."""
        entry = self.cases.get(case_id)
        value = entry.get("prompt_sha256") if isinstance(entry, dict) else None
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "algorithms": {name: ALGORITHMS[name] for name in sorted(ALGORITHMS)},
            "versions": library_versions(),
            "cases": {cid: self.cases[cid] for cid in sorted(self.cases)},
        }


class HashSource:
    """Hashes of baseline images: as stored, or recomputed from the image store.

    ``fetch``: :meth:`image_path` downloads an image missing locally from the image store
    (for the review page); otherwise it names a file without any network call.
    """

    def __init__(self, baseline: BaselineFile, store: ImageStore, *, fetch: bool = False) -> None:
        self.baseline = baseline
        self.store = store
        self.fetch = fetch
        self._cache: dict[tuple[str, str], str] = {}

    def image_path(self, image: Mapping[str, Any]) -> Path:
        path = stored_image(self.store.directory, image)
        return self.store.locate(path.stem, path.suffix[1:], fetch=self.fetch)

    def hash(self, image: Mapping[str, Any], algorithm: str) -> str:
        stored = (image.get("hashes") or {}).get(algorithm)
        if stored and self.baseline.outdated is None:
            return str(stored)
        key = (str(image["sha256"]), algorithm)
        if key not in self._cache:
            try:
                _, data = read_stored(self.store, image)
            except ImageUnavailable as exc:
                what = (
                    f"baseline image {stored_image(self.store.directory, image)} is missing"
                    if exc.kind == "missing" and self.store.url is None
                    else f"baseline image: {exc}"
                )
                raise DriftError(
                    f"{what}, so its {algorithm} hash cannot be (re)computed; accept the "
                    "current images with --imagegen-update-baselines"
                ) from None
            hashes, _, _ = compute_hashes(data, [algorithm])
            self._cache[key] = hashes[algorithm]
        return self._cache[key]


@dataclass
class ImageDrift:
    sha256: str
    distances: dict[str, int]
    over: list[str]


def compare(
    current: Sequence[bytes],
    baseline_images: Sequence[Mapping[str, Any]],
    thresholds: Mapping[str, int],
    source: HashSource,
    digests: Sequence[str] | None = None,
) -> list[ImageDrift]:
    """Per current image: distance to the nearest accepted image, per algorithm."""
    accepted = {str(b["sha256"]) for b in baseline_images}
    out = []
    for index, data in enumerate(current):
        digest = digests[index] if digests is not None else sha256(data)
        if digest in accepted:  # fast path: byte-identical, no decoding
            out.append(ImageDrift(digest, {a: 0 for a in thresholds}, []))
            continue
        mine, _, _ = compute_hashes(data, thresholds)
        distances = {
            a: min(hamming(mine[a], source.hash(b, a)) for b in baseline_images) for a in thresholds
        }
        over = [a for a, d in distances.items() if d > thresholds[a]]
        out.append(ImageDrift(digest, distances, over))
    return out


def describe(drifts: Sequence[ImageDrift], thresholds: Mapping[str, int]) -> list[str]:
    lines = []
    for i, d in enumerate(drifts, 1):
        parts = []
        for a, dist in d.distances.items():
            mark = ">" if a in d.over else "<="
            parts.append(f"{a} {dist} {mark} {thresholds[a]}")
        verdict = "DRIFTED" if d.over else "ok"
        lines.append(f"  image {i}: {', '.join(parts)}  {verdict}")
    return lines
