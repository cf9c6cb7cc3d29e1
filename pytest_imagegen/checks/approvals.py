"""Approving images as baselines: ``approvals.json`` from the review page, and the record
each approval leaves in the baseline entry (SPEC §17).

An approvals file comes from a CI artifact, so it is untrusted: :func:`load` accepts
exactly the format the page writes and nothing else, and :func:`updates` refuses, by
name, every test that is not a collected case and every image that is not in the case's
image store or whose bytes do not hash to the named sha256. Either everything is
accepted or nothing is written. The updates it returns go through the same
:func:`~pytest_imagegen.checks.drift.apply_updates` as ``--imagegen-update-baselines``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.errors import ImagegenError
from ..cassettes.files import IMAGE_EXTENSIONS, SHA256_RE, UnsafePath, check_inside, image_path
from ..cassettes.store import ImageStore
from . import perceptual

FORMAT = 1
MAX_FILE_BYTES = 5_000_000
MAX_CASES = 10_000
MAX_IMAGES = 100
_TOP_KEYS = {"format", "kind", "created", "approvals"}
_CASE_KEYS = {"nodeid", "images", "cost_per_accepted"}


class ApprovalError(ImagegenError):
    """An approvals file (or a review decision) that cannot be applied; nothing was written."""


@dataclass(frozen=True)
class Approval:
    nodeid: str
    shas: tuple[str, ...]
    cost_per_accepted: float | None = None


@dataclass(frozen=True)
class Target:
    """Where a collected case's baseline lives (from the suite, never from the file)."""

    nodeid: str
    key: str  # the case id in the baseline file
    prompt: str
    baseline_file: Path
    images_dir: Path
    suite_dir: Path  # the folder of the suite file: baselines and images stay inside it
    algorithms: tuple[str, ...]


def load(path: Path, shown: str) -> list[Approval]:
    """The approvals of ``path``, validated; :class:`ApprovalError` naming every problem."""
    fix = "nothing was written; download it again from the review page (--imagegen-html)"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ApprovalError(
            f"--imagegen-approve {shown}: cannot be read ({exc.strerror})"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ApprovalError(f"--imagegen-approve {shown}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApprovalError(f"--imagegen-approve {shown}: not JSON ({exc}); {fix}") from None
    return parse(data, f"--imagegen-approve {shown}", fix)


def parse(data: Any, where: str, fix: str) -> list[Approval]:
    if not isinstance(data, dict) or not isinstance(data.get("approvals"), list):
        raise ApprovalError(f"{where}: not a pytest-imagegen approvals file; {fix}")
    problems = []
    if data.get("format") != FORMAT:
        problems.append(f"format {str(data.get('format'))[:20]!r} is not {FORMAT}")
    extra = sorted(str(k)[:40] for k in data if k not in _TOP_KEYS)
    if extra:
        problems.append(f"unknown keys {', '.join(extra)}")
    entries = data["approvals"]
    if len(entries) > MAX_CASES:
        problems.append(f"more than {MAX_CASES} approvals")
        entries = []
    out: list[Approval] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        problem, approval = _entry(entry)
        if approval is not None and approval.nodeid in seen:
            problem = f"{approval.nodeid!r} is listed twice"
        if problem:
            problems.append(f"approval {number}: {problem}")
        elif approval is not None:
            seen.add(approval.nodeid)
            out.append(approval)
    if problems:
        raise ApprovalError(
            f"{where} was refused:\n" + "\n".join(f"  {p}" for p in problems[:50]) + f"\n  {fix}"
        )
    return out


def _entry(entry: Any) -> tuple[str | None, Approval | None]:
    if not isinstance(entry, dict):
        return "not a mapping", None
    extra = sorted(str(k)[:40] for k in entry if k not in _CASE_KEYS)
    if extra:
        return f"unknown keys {', '.join(extra)}", None
    nodeid, images = entry.get("nodeid"), entry.get("images")
    if not isinstance(nodeid, str) or not nodeid or len(nodeid) > 2000:
        return "`nodeid` must be a test's node id", None
    if not isinstance(images, list) or not 0 < len(images) <= MAX_IMAGES:
        return f"{nodeid!r}: `images` must list 1 to {MAX_IMAGES} images", None
    shas = []
    for image in images:
        sha = image.get("sha256") if isinstance(image, dict) and len(image) == 1 else None
        if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
            return f'{nodeid!r}: an image is not {{"sha256": <64 hex digits>}}', None
        shas.append(sha)
    cost = entry.get("cost_per_accepted")
    if cost is not None and (
        isinstance(cost, bool)
        or not isinstance(cost, (int, float))
        or not math.isfinite(cost)
        or cost < 0
    ):
        return f"{nodeid!r}: `cost_per_accepted` must be a non-negative number or null", None
    return None, Approval(nodeid, tuple(dict.fromkeys(shas)), None if cost is None else float(cost))


def find_image(target: Target, sha: str) -> tuple[Path | None, str | None]:
    """The stored file of image ``sha`` of ``target`` and, if it cannot be used, why."""
    for ext in IMAGE_EXTENSIONS:
        try:
            path = image_path(target.images_dir, sha, ext)
            if not path.exists() and not path.is_symlink():
                continue
            check_inside(path, target.suite_dir)
        except UnsafePath as exc:
            return None, f"image {sha} of {target.nodeid}: {exc}"
        if path.is_symlink() or not path.is_file():
            return None, f"image {sha} of {target.nodeid}: {path} is not a regular file"
        return path, None
    return None, (
        f"image {sha} of {target.nodeid} is not in the image store {target.images_dir} "
        "(record the case first, or download approvals.json again)"
    )


def updates(
    approvals: Sequence[Approval],
    targets: Mapping[str, Target],
    *,
    mode: str = "replace",
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Baseline updates for ``approvals`` (``mode`` ``replace`` or ``reject``); every
    unknown test and unusable image named in one :class:`ApprovalError`."""
    problems: list[str] = []
    found: list[tuple[Approval, Target, list[bytes]]] = []
    for a in approvals:
        target = targets.get(a.nodeid)
        if target is None:
            problems.append(f"unknown test {a.nodeid!r}: not a prompt suite case of this run")
            continue
        try:
            check_inside(target.baseline_file, target.suite_dir)
            check_inside(target.images_dir, target.suite_dir)
        except UnsafePath as exc:
            problems.append(f"{a.nodeid}: its baselines would be written outside the suite: {exc}")
            continue
        datas = []
        for sha in a.shas:
            path, problem = find_image(target, sha)
            if problem or path is None:
                problems.append(problem or sha)
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                problems.append(
                    f"image {sha} of {a.nodeid}: {path} does not match its sha256 (damaged); "
                    "re-record the case"
                )
                continue
            datas.append(data)
        found.append((a, target, datas))
    if problems:
        raise ApprovalError(
            "approvals refused, nothing was written:\n" + "\n".join(f"  {p}" for p in problems)
        )
    record = {"time": now(), "by": by or approver()}
    out = []
    for a, target, datas in found:
        store = ImageStore(target.images_dir)
        entries = perceptual.accept_images(datas, target.algorithms, store, hashes=False)
        update: dict[str, Any] = {
            "file": str(target.baseline_file),
            "images_dir": str(target.images_dir),
            "key": target.key,
            "mode": mode,
            "prompt_sha256": perceptual.sha256(target.prompt.encode("utf-8")),
            "prompt": target.prompt,
            "images": [e.to_json() for e in entries],
        }
        stamp = {**record, "cost_per_accepted": a.cost_per_accepted}
        if mode == "reject":
            update["rejected"] = {**record, "images": ", ".join(a.shas)}
        else:
            update["approved"] = stamp
        out.append(update)
    return out


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def approver(cwd: Path | None = None) -> str:
    """Who approves: git's ``user.name`` when set, else the OS user."""
    try:
        done = subprocess.run(
            ["git", "config", "user.name"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
        )
        name = done.stdout.strip()
        if done.returncode == 0 and name:
            return name[:200]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"
