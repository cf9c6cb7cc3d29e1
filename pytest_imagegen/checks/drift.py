"""Visual drift of one test against its baseline, and writing accepted baselines.

:func:`check` compares a test's images with the accepted ones (or accepts them
when the test was just recorded or ``--imagegen-update-baselines`` is on) and
returns what the reports need. Accepting never writes a file directly: it
returns an *update* that the session applies once at the end
(:func:`apply_updates`), on the pytest-xdist controller when there is one, so
no two processes write the same baseline file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import DriftError, command
from ..cassettes.files import shown, write_text
from ..cassettes.store import ImageStore, image_extension
from . import perceptual

if TYPE_CHECKING:
    from ..api.redact import Redactor


@dataclass
class DriftCheck:
    status: str  # pass | fail | warn | off | accepted | missing
    data: dict[str, Any] = field(default_factory=dict)  # for reports (JSON, HTML)
    update: dict[str, Any] | None = None  # a baseline entry to write at session end
    note: str | None = None  # said once in the summary
    message: str | None = None  # the failure / warning text


def thresholds_for(
    drift: Mapping[str, int] | None, defaults: Mapping[str, int]
) -> dict[str, int] | None:
    """Effective thresholds: the ini defaults overridden by the case's ``expect.drift``."""
    if drift is None:
        return None
    return {**defaults, **drift}


def check(
    *,
    nodeid: str,
    key: str,
    images: Sequence[bytes],
    prompt: str,
    baseline_file: Path,
    images_dir: Path,
    thresholds: Mapping[str, int] | None,
    mode: str,
    update: str | None,
    recorded: bool,
    cache: dict[Path, perceptual.BaselineFile],
    html_dir: Path | None = None,
    shas: Sequence[str | None] | None = None,
    store: ImageStore | None = None,
) -> DriftCheck:
    """Compare ``images`` with the accepted images of ``key`` in ``baseline_file``.

    ``shas`` are the images' sha256 when already known (verified sidecars); ``store``
    the sidecar store of ``images_dir`` (with an image store behind it, or not).
    """
    store = store or ImageStore(images_dir)
    known = list(shas) if shas is not None else [None] * len(images)
    digests = [k or perceptual.sha256(d) for k, d in zip(known, images, strict=True)]
    current: list[dict[str, Any]] = [
        {"sha256": sha, "path": str(store.locate(sha, image_extension(d)))}
        for sha, d in zip(digests, images, strict=True)
    ]
    if html_dir is not None:  # the review page shows them: make sure each one is stored
        for entry, image in zip(current, images, strict=True):
            if not Path(entry["path"]).exists():
                store.put(image)
    if thresholds is None or (mode == "off" and update is None):
        return DriftCheck("off", {"status": "off", "images": current})
    if baseline_file not in cache:
        cache[baseline_file] = perceptual.BaselineFile.load(baseline_file)
    baseline = cache[baseline_file]
    try:
        accepted = baseline.images(key)
    except DriftError:
        if update is None:
            raise
        accepted = None  # damaged, and about to be replaced
    source = perceptual.HashSource(baseline, store, fetch=html_dir is not None)
    note = None
    if baseline.outdated and accepted:
        note = (
            f"{shown(baseline_file)}: hashes were made with {baseline.outdated}; "
            "recomputed from the stored images (run --imagegen-update-baselines to store fresh ones)"
        )
    data: dict[str, Any] = {
        "status": "",
        "thresholds": dict(thresholds),
        "images": current,
        "baseline": [str(source.image_path(b)) for b in accepted or []],
    }
    drifts: list[perceptual.ImageDrift] = []
    if accepted:
        drifts = perceptual.compare(images, accepted, thresholds, source, digests)
        for entry, d in zip(current, drifts, strict=True):
            entry["distances"] = d.distances
            entry["over"] = d.over
    if update is not None or (accepted is None and recorded):
        entries = perceptual.accept_images(images, thresholds, store, hashes=False)
        data["status"] = "accepted"
        return DriftCheck(
            "accepted",
            data,
            update={
                "file": str(baseline_file),
                "images_dir": str(images_dir),
                "key": key,
                "mode": update or "replace",
                "prompt_sha256": perceptual.sha256(prompt.encode("utf-8")),
                "prompt": prompt,
                "images": [e.to_json() for e in entries],
            },
            note=note,
        )
    if accepted is None:
        data["status"] = "missing"
        return DriftCheck(
            "missing",
            data,
            message=(
                f"no accepted baseline for {nodeid} in {shown(baseline_file)}; look at the images "
                f"(--imagegen-html=DIR) and accept them with "
                f"{command('--imagegen-update-baselines', nodeid)}"
            ),
        )
    drifted = any(d.over for d in drifts)
    status = ("warn" if mode == "warn" else "fail") if drifted else "pass"
    data["status"] = status
    message = None
    if drifted:
        review = f"{html_dir / 'index.html'}" if html_dir else "run again with --imagegen-html=DIR"
        accepted_for = baseline.prompt_sha256(key)
        other_prompt = (
            ["  the baseline was accepted for another prompt: the prompt changed since, so a "
             "new look may be intended"]
            if accepted_for and accepted_for != perceptual.sha256(prompt.encode("utf-8"))
            else []
        )  # fmt: skip
        message = "\n".join(
            [
                f"visual drift from the accepted baseline ({shown(baseline_file)}, key {key!r}): "
                "distance to the nearest accepted image, per algorithm",
                *perceptual.describe(drifts, thresholds),
                *other_prompt,
                f"  review: {review}",
                f"  accept if intended: {command('--imagegen-update-baselines', nodeid)}",
            ]
        )
    return DriftCheck(status, data, note=note, message=message)


def raise_for(result: DriftCheck) -> None:
    if result.status in ("fail", "missing") and result.message:
        raise DriftError(result.message)


# ------------------------------------------------------------ session end


def apply_updates(
    updates: Iterable[Mapping[str, Any]],
    full_files: Mapping[str, Sequence[str]] | None = None,
    redactor: Redactor | None = None,
    lock_root: Path | None = None,
    stores: Callable[[Path], ImageStore] = ImageStore,
) -> list[str]:
    """Write accepted entries, one write per baseline file; return summary lines.

    ``full_files`` (baseline file -> every key of its suite) enables pruning:
    entries whose key is not in that list are removed. Pass it only for suite
    files collected in full (no -k, no deselection, no collection error).
    """
    from ..api.locks import file_lock

    by_file: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for u in updates:
        by_file[str(u["file"])].append(u)
    for name in full_files or {}:
        by_file.setdefault(name, [])
    lines = []
    for name in sorted(by_file):
        path = Path(name)
        with file_lock(path, lock_root or path.parent.parent / ".imagegen"):
            baseline = perceptual.BaselineFile.load(path)
            before = dict(baseline.cases)
            changed = _refresh_outdated(baseline, by_file[name], stores)
            for u in by_file[name]:
                for image in u["images"]:
                    perceptual.complete_hashes(image, stores(Path(str(u["images_dir"]))))
                entry = {"prompt_sha256": u["prompt_sha256"], "images": list(u["images"])}
                old = baseline.cases.get(str(u["key"]))
                entry.update(_records(u, old))
                if u["mode"] == "reject":  # the named images are not acceptable
                    refused = {i["sha256"] for i in u["images"]}
                    old_images = old.get("images") if isinstance(old, dict) else None
                    entry["images"] = [
                        i
                        for i in (old_images if isinstance(old_images, list) else [])
                        if perceptual.entry_problem(i) is None and i["sha256"] not in refused
                    ]
                    if isinstance(old, dict) and isinstance(old.get("prompt_sha256"), str):
                        entry["prompt_sha256"] = old["prompt_sha256"]
                elif u["mode"] == "add" and isinstance(old, dict):
                    kept = [
                        i
                        for i in old.get("images") or []
                        if perceptual.entry_problem(i) is None  # damaged entries are dropped
                    ]
                    known = {i["sha256"] for i in kept}
                    extra = [i for i in u["images"] if i["sha256"] not in known]
                    entry["images"] = kept + extra
                baseline.cases[str(u["key"])] = entry
            pruned: list[str] = []
            if full_files is not None and name in full_files:
                keep = set(full_files[name])
                pruned = sorted(k for k in baseline.cases if k not in keep)
                for k in pruned:
                    del baseline.cases[k]
            if baseline.cases == before and not changed and path.exists():
                continue
            text = json.dumps(baseline.to_json(), indent=2, sort_keys=False) + "\n"
            write_text(path, text, redactor)
        accepted = len({str(u["key"]) for u in by_file[name]})
        detail = f"accepted {accepted}" + (
            f", removed {len(pruned)} ({', '.join(pruned)})" if pruned else ""
        )
        lines.append(f"baselines written: {shown(path)} ({detail})")
    return lines


def _records(update: Mapping[str, Any], old: Any) -> dict[str, Any]:
    """The prompt and the approval / rejection records of a new baseline entry (SPEC §17):
    an approval replaces the old records, a rejection keeps the old approval."""
    out: dict[str, Any] = {}
    if isinstance(update.get("prompt"), str):
        out["prompt"] = update["prompt"]
    if update.get("mode") == "reject":
        if isinstance(old, dict):
            out.update({k: old[k] for k in ("prompt", "approved") if k in old})
        if update.get("rejected"):
            out["rejected"] = dict(update["rejected"])
    elif update.get("approved"):
        out["approved"] = dict(update["approved"])
    return out


def _refresh_outdated(
    baseline: perceptual.BaselineFile,
    updates: Sequence[Mapping[str, Any]],
    stores: Callable[[Path], ImageStore],
) -> bool:
    """Recompute kept entries' hashes when the file was made by other versions/parameters."""
    if not baseline.outdated or not updates:
        return False
    source = perceptual.HashSource(baseline, stores(Path(str(updates[0]["images_dir"]))))
    for entry in baseline.cases.values():
        images = entry.get("images") if isinstance(entry, dict) else None
        for image in images if isinstance(images, list) else []:
            if perceptual.entry_problem(image) is not None:
                continue  # damaged: reported when its case runs
            try:
                image["hashes"] = {a: source.hash(image, a) for a in image.get("hashes") or {}}
            except DriftError:
                continue  # image gone: its old hashes stay, and it will be flagged again
    return True
