"""The pull-request cost gate: per-case cost changes against an earlier report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.errors import ConfigError
from ..money.prices import format_usd

EPSILON = 1e-9


@dataclass
class CostLimit:
    """``--imagegen-max-cost-increase``: USD or a percentage of the baseline total."""

    amount: float
    percent: bool

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else format_usd(self.amount)


def parse_cost_limit(text: str) -> CostLimit:
    m = re.fullmatch(r"\s*\$?\s*(\d+(?:\.\d+)?|\.\d+)\s*(%?)\s*", text or "")
    if not m:
        raise ConfigError(
            f"--imagegen-max-cost-increase: {text!r} is not an amount; use USD like 0.50 "
            "or a percentage like 10%"
        )
    return CostLimit(float(m.group(1)), bool(m.group(2)))


@dataclass
class CostDiff:
    old_total: float = 0.0
    new_total: float = 0.0
    added: list[tuple[str, float]] = field(default_factory=list)
    removed: list[tuple[str, float]] = field(default_factory=list)
    changed: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def change(self) -> float:
        return self.new_total - self.old_total

    @property
    def percent(self) -> float | None:
        if self.old_total > 0:
            return 100.0 * self.change / self.old_total
        return None if self.change > EPSILON else 0.0

    def exceeds(self, limit: CostLimit) -> bool:
        if self.change <= EPSILON:
            return False
        if not limit.percent:
            return self.change > limit.amount + EPSILON
        pct = self.percent
        return pct is None or pct > limit.amount + EPSILON

    def describe_change(self) -> str:
        sign = "+" if self.change >= 0 else "-"
        pct = self.percent
        pct_text = "new cost" if pct is None else f"{pct:+.1f}%"
        return (
            f"{format_usd(self.old_total)} -> {format_usd(self.new_total)} "
            f"({sign}{format_usd(abs(self.change))}, {pct_text})"
        )


def load_baseline(path: Path) -> dict[str, float]:
    """nodeid -> list cost from an earlier ``--imagegen-report`` file."""
    where = f"--imagegen-cost-baseline {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: file not found; write one with --imagegen-report=PATH.json "
            "on the base branch"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: not a readable JSON report ({exc})") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ConfigError(f"{where}: not a pytest-imagegen report (no `cases` list)")
    out: dict[str, float] = {}
    for c in cases:
        if isinstance(c, dict) and isinstance(c.get("nodeid"), str):
            cost = c.get("list_cost")
            out[c["nodeid"]] = float(cost) if isinstance(cost, (int, float)) else 0.0
    return out


def compare(baseline: Mapping[str, float], results: Iterable[Mapping[str, Any]]) -> CostDiff:
    current = {str(r["nodeid"]): float(r.get("list_cost") or 0.0) for r in results}
    diff = CostDiff(old_total=sum(baseline.values()), new_total=sum(current.values()))
    for nodeid in sorted(current.keys() | baseline.keys()):
        new, old = current.get(nodeid), baseline.get(nodeid)
        if old is None and new is not None:
            diff.added.append((nodeid, new))
        elif new is None and old is not None:
            diff.removed.append((nodeid, old))
        elif old is not None and new is not None and abs(new - old) > EPSILON:
            diff.changed.append((nodeid, old, new))
    return diff


def gate_lines(diff: CostDiff, limit: CostLimit | None) -> list[str]:
    lines = ["cost change vs baseline (list cost of a live run):"]
    for nodeid, new in diff.added:
        lines.append(f"  added    {nodeid}: {format_usd(new)}")
    for nodeid, old in diff.removed:
        lines.append(f"  removed  {nodeid}: {format_usd(old)}")
    for nodeid, old, new in diff.changed:
        lines.append(f"  changed  {nodeid}: {format_usd(old)} -> {format_usd(new)}")
    if not (diff.added or diff.removed or diff.changed):
        lines.append("  no case changed cost")
    lines.append(f"  total: {diff.describe_change()}")
    if limit is not None:
        verdict = "EXCEEDED" if diff.exceeds(limit) else "within"
        lines.append(f"  allowed increase: {limit} -> {verdict}")
    return lines
