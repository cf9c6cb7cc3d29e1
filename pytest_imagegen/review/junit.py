"""What a test adds to pytest's own reports: JUnit XML properties and drift warnings."""

from __future__ import annotations

import warnings
from typing import Any

from ..api.errors import DriftWarning
from .results import CaseResult
from .rightsize import economics, shown_cost_per_accepted


def junit_properties(result: CaseResult) -> list[tuple[str, Any]]:
    """``list_cost``, ``actual_cost`` and, with quality checks, the accept rate and the cost
    per accepted image (--junitxml; carried to the xdist controller)."""
    out: list[tuple[str, Any]] = [
        ("list_cost", result.list_cost),
        ("actual_cost", result.actual_cost),
    ]
    e = economics(result.to_dict())
    if e["accept_rate"] is not None:
        out.append(("accept_rate", e["accept_rate"]))
        per = shown_cost_per_accepted(e["cost_per_accepted"], result.accepted)
        out.append(("cost_per_accepted", e["cost_per_accepted"] or per))
    return out


def emit_warning(result: CaseResult) -> None:
    """``--imagegen-drift=warn``: the drift message as a warning of the test."""
    if result.warning:
        warnings.warn(DriftWarning(result.warning), stacklevel=3)
