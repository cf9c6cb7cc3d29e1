"""``--imagegen-report=PATH.json``: every case's figures, for CI and the cost gate."""

from __future__ import annotations

import json
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
)  # fmt: skip


def case_record(r: Mapping[str, Any]) -> dict[str, Any]:
    from .rightsize import economics

    merged = {**r, **economics(r)}
    return {name: merged.get(name) for name in CASE_FIELDS}


def json_report(
    results: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    cases = sorted((case_record(r) for r in results), key=lambda c: str(c["nodeid"]))
    return {
        "format": REPORT_FORMAT,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": asdict(summarize(results)),
        **(dict(extra) if extra else {}),
        "cases": cases,
    }


def write_json(path: Path, report: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    from ..cassettes.files import write_text

    data = redactor.mask_data(report) if redactor else report
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", redactor)
