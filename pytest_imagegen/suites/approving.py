"""Approvals for the session: ``--imagegen-approve=approvals.json`` and the review server's
Approve / Reject (SPEC §17), through the same baseline writer as
``--imagegen-update-baselines`` (:func:`~pytest_imagegen.checks.drift.apply_updates`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cassettes.paths import suite_images_dir
from ..checks import approvals, drift, perceptual
from ..checks.approvals import Approval, ApprovalError, Target
from ..money.prices import format_usd
from ..review.rightsize import economics

if TYPE_CHECKING:
    from ..api.redact import Redactor
    from ..api.settings import Settings
    from .spec import CaseSpec


def targets(cases: Iterable[tuple[str, CaseSpec]], settings: Settings) -> dict[str, Target]:
    """nodeid -> where its baseline lives, for the collected suite cases."""
    out = {}
    for nodeid, spec in cases:
        thresholds = drift.thresholds_for(spec.expect.drift, settings.drift_thresholds) or {}
        out[nodeid] = Target(
            nodeid=nodeid,
            key=spec.id,
            prompt=spec.prompt,
            baseline_file=perceptual.baseline_path(spec.path),
            images_dir=suite_images_dir(spec.path),
            suite_dir=spec.path.parent,
            algorithms=tuple(perceptual.hash_algorithms(thresholds)),
        )
    return out


def apply_file(
    path: Path,
    shown: str,
    found: Mapping[str, Target],
    redactor: Redactor,
    cwd: Path,
    fetch: Callable[[Path, str], None] | None = None,
) -> list[str]:
    """Apply an approvals file: every entry, or (on any problem) nothing. ``fetch(images_dir,
    sha)`` brings an image that is only in the image store into the local folder first."""
    chosen = approvals.load(path, shown)
    if not chosen:
        return [f"approvals: {shown} approves nothing"]
    for approval in chosen if fetch is not None else []:
        target = found.get(approval.nodeid)
        for sha in approval.shas if target is not None else []:
            assert target is not None and fetch is not None
            if approvals.find_image(target, sha)[0] is None:
                fetch(target.images_dir, sha)
    updates = approvals.updates(chosen, found, by=approvals.approver(cwd))
    lines = drift.apply_updates(updates, None, redactor)
    images = sum(len(a.shas) for a in chosen)
    lines.append(f"approved {images} image(s) of {len(chosen)} case(s) from {shown}:")
    lines += [f"  {a.nodeid}" for a in chosen]
    return lines


def decide(
    nodeid: Any,
    action: Any,
    shas: Any,
    found: Mapping[str, Target],
    results: Mapping[str, Mapping[str, Any]],
    redactor: Redactor,
    cwd: Path,
) -> str:
    """One decision of the review server: approve or reject the named current images of a
    case of this run; returns what was done (:class:`ApprovalError` when refused)."""
    if action not in ("approve", "reject"):
        raise ApprovalError("the action must be approve or reject")
    result = results.get(nodeid) if isinstance(nodeid, str) else None
    if result is None or nodeid not in found:
        raise ApprovalError(f"unknown test {str(nodeid)[:200]!r}: not a case of this run")
    current = [str(i.get("sha256")) for i in (result.get("drift") or {}).get("images") or []]
    if not isinstance(shas, list) or not shas:
        shas = current
    if not all(isinstance(s, str) and s in current for s in shas):
        raise ApprovalError(f"{nodeid}: only the images this run made can be approved")
    cost = economics(result)["cost_per_accepted"]
    chosen = [Approval(nodeid, tuple(dict.fromkeys(shas)), cost)]
    mode = "replace" if action == "approve" else "reject"
    updates = approvals.updates(chosen, found, mode=mode, by=approvals.approver(cwd))
    drift.apply_updates(updates, None, redactor)
    record = updates[0].get("approved") or updates[0].get("rejected") or {}
    what = "approved" if action == "approve" else "rejected"
    per = f", cost per accepted image {format_usd(cost)}" if cost is not None else ""
    return (
        f"{what} {len(chosen[0].shas)} image(s) by {record.get('by')} at {record.get('time')}"
        f"{per}: {Path(updates[0]['file']).name} written"
    )


def stamp_updates(results: Sequence[Mapping[str, Any]], cwd: Path) -> None:
    """``--imagegen-update-baselines`` / ``--imagegen-add-baselines`` are approvals too:
    their entries get the record (who, when, cost per accepted image)."""
    by: str | None = None
    for r in results:
        for update in r.get("baseline_updates") or []:
            if update.get("mode") in ("replace", "add") and "approved" not in update:
                by = by or approvals.approver(cwd)
                if isinstance(update, dict):
                    update["approved"] = {
                        "time": approvals.now(),
                        "by": by,
                        "cost_per_accepted": economics(r)["cost_per_accepted"],
                    }
