"""Aggregated figures of a session and their renderings (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .costs import format_usd


@dataclass
class Summary:
    cases: int = 0
    list_cost: float = 0.0  # what a full live run of these cases would cost
    spent: float = 0.0
    saved: float = 0.0  # what the replayed cases cost when they were recorded
    live: int = 0
    replayed: int = 0
    recorded: int = 0
    missing: int = 0
    ceiling_failures: int = 0


def summarize(results: Iterable[Mapping[str, Any]]) -> Summary:
    s = Summary()
    for r in results:
        s.cases += 1
        s.list_cost += r.get("list_cost") or 0.0
        s.spent += r.get("actual_cost") or 0.0
        s.saved += r.get("saved") or 0.0
        status = r.get("cassette")
        if status == "live":
            s.live += 1
        elif status == "replayed":
            s.replayed += 1
        elif status == "recorded":
            s.recorded += 1
        elif status in ("missing", "stale"):
            s.missing += 1
        if r.get("ceiling"):
            s.ceiling_failures += 1
    return s


def terminal_lines(s: Summary) -> list[str]:
    lines = [
        f"cases: {s.cases}  list cost of a live run: {format_usd(s.list_cost)}",
        f"live: {s.live}  replayed: {s.replayed}  recorded: {s.recorded}  no cassette: {s.missing}",
        f"spent: {format_usd(s.spent)}  saved by replay: {format_usd(s.saved)}",
    ]
    if s.ceiling_failures:
        lines.append(f"cost ceiling failures: {s.ceiling_failures}")
    return lines
