"""Writing the session's report files: JSON, Markdown and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..api.redact import Redactor
from ..cassettes.files import append_text, write_text
from . import jsonreport, markdown
from .gate import CostDiff, CostLimit


def write_reports(
    results: Sequence[Mapping[str, Any]],
    *,
    json_path: Path | None,
    markdown_path: Path | None,
    step_summary: Path | None,
    cost_diff: CostDiff | None,
    cost_limit: CostLimit | None,
    groups: Sequence[Any] | None,
    redactor: Redactor,
    root: Path | None = None,
) -> None:
    """Every report asked for; each text masked for API keys, each file written atomically.
    Paths in the JSON report are relative to ``root`` (the rootdir)."""
    extra: dict[str, Any] = {}
    if cost_diff is not None:
        extra["cost_change"] = {
            "old_total": cost_diff.old_total,
            "new_total": cost_diff.new_total,
            "change": cost_diff.change,
        }
    if groups is not None:
        extra["right_size"] = [g.to_dict() for g in groups]
    if json_path is not None:
        jsonreport.write_json(json_path, jsonreport.json_report(results, extra, root), redactor)
    if markdown_path is not None or step_summary is not None:
        text = markdown.markdown(results, cost_diff, cost_limit, groups)
        if markdown_path is not None:
            write_text(markdown_path, text, redactor)
        if step_summary is not None:
            append_text(step_summary, text, redactor)
