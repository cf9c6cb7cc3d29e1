"""``--imagegen-report=PATH.json``: every case's figures, for CI and the cost gate."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .summary import summarize

if TYPE_CHECKING:
    from ..api.redact import Redactor

REPORT_FORMAT = 1
#: per-case fields of the JSON report (SPEC §5), in this order
CASE_FIELDS = (
    "nodeid", "suite", "category", "model", "size", "quality", "n",
    "list_cost", "actual_cost", "max_cost", "cassette", "saved", "ceiling",
    "drift", "outcome", "revised_prompts", "text", "accepted", "judge", "judge_cost",
    "images", "accept_rate", "cost_per_accepted", "group", "variant",
    "states", "stale_changes", "rerecord_command", "rerecord_cost",
)  # fmt: skip


def case_record(r: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    """One case of the report; with ``root``, its paths relative to it (SPEC §12)."""
    from .rightsize import economics
    from .states import states

    merged = {**r, **economics(r), "states": states(r)}
    record = {name: merged.get(name) for name in CASE_FIELDS}
    drift = record.get("drift")
    if root is not None and isinstance(drift, Mapping):
        drift = dict(drift)
        drift["images"] = [
            {**i, "path": _relative(root, i["path"])} if i.get("path") else dict(i)
            for i in drift.get("images") or []
        ]
        if "baseline" in drift:
            drift["baseline"] = [_relative(root, p) for p in drift.get("baseline") or []]
        record["drift"] = drift
    return record


def _relative(root: Path, path: Any) -> str:
    """``path`` relative to the rootdir (``..`` allowed), as report paths are."""
    try:
        return os.path.relpath(str(path), root).replace(os.sep, "/")
    except ValueError:  # another drive
        return str(path)


def relative_groups(groups: Sequence[Mapping[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Right-sizing groups (``to_dict``) with their image paths relative to ``root``."""
    out = []
    for g in groups:
        variants = [
            {**v, "image_path": _relative(root, v["image_path"]) if v.get("image_path") else None}
            for v in g.get("variants") or []
        ]
        out.append({**g, "variants": variants})
    return out


def json_report(
    results: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    cases = sorted((case_record(r, root) for r in results), key=lambda c: str(c["nodeid"]))
    extra = dict(extra) if extra else {}
    if root is not None and extra.get("right_size"):
        extra["right_size"] = relative_groups(extra["right_size"], root)
    return {
        "format": REPORT_FORMAT,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": {
            k: round(v, 6) if isinstance(v, float) else v
            for k, v in asdict(summarize(results)).items()
        },
        **extra,
        "cases": cases,
    }


def write_json(path: Path, report: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    from ..cassettes.files import write_text

    data = redactor.mask_data(report) if redactor else report
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", redactor)
