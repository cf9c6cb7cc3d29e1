"""The session's figures: one :class:`Summary` over the per-case result dicts, and its
terminal lines (pure; the dicts travel on test reports, so the xdist controller sees
every worker's cases)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..money.prices import format_usd


@dataclass
class Summary:
    cases: int = 0
    list_cost: float = 0.0  # live-equivalent: what a full live run of these cases would cost
    spent: float = 0.0  # billed by a live provider (fake-server traffic is not spend)
    fake_spent: float = 0.0  # what the fake server's answers would have cost (not billed)
    saved: float = 0.0  # what the replayed cases cost when they were recorded
    live: int = 0
    replayed: int = 0
    recorded: int = 0
    missing: int = 0
    stale: int = 0
    ceiling_failures: int = 0
    drift_failures: int = 0
    quality_failures: int = 0
    drift_warnings: int = 0
    baselines_accepted: int = 0
    failed: int = 0


def summarize(results: Iterable[Mapping[str, Any]]) -> Summary:
    s = Summary()
    for r in results:
        s.cases += 1
        s.list_cost += r.get("list_cost") or 0.0
        if r.get("server") == "fake":
            s.fake_spent += r.get("actual_cost") or 0.0
        else:
            s.spent += r.get("actual_cost") or 0.0
        s.saved += r.get("saved") or 0.0
        status = r.get("cassette")
        if status == "live":
            s.live += 1
        elif status == "replayed":
            s.replayed += 1
        elif status == "recorded":
            s.recorded += 1
        elif status == "missing":
            s.missing += 1
        elif status == "stale":
            s.stale += 1
        if r.get("ceiling"):
            s.ceiling_failures += 1
        if r.get("quality_check") == "fail":
            s.quality_failures += 1
        drift_status = (r.get("drift") or {}).get("status")
        if drift_status == "fail":
            s.drift_failures += 1
        elif drift_status == "warn":
            s.drift_warnings += 1
        elif drift_status == "accepted":
            s.baselines_accepted += 1
        if r.get("outcome") == "failed":
            s.failed += 1
    return s


def terminal_lines(s: Summary) -> list[str]:
    lines = [
        f"cases: {s.cases}  replayed: {s.replayed}  recorded: {s.recorded}  "
        f"live: {s.live}  no cassette: {s.missing}" + (f"  stale: {s.stale}" if s.stale else ""),
        f"spent: {format_usd(s.spent)}  live-equivalent: {format_usd(s.list_cost)}  "
        f"saved by replay: {format_usd(s.saved)}",
    ]
    if s.fake_spent:
        lines.append(
            f"fake server (not billed, not spend): {format_usd(s.fake_spent)} at list prices"
        )
    if s.ceiling_failures:
        lines.append(f"cost ceiling failures: {s.ceiling_failures}")
    if s.quality_failures:
        lines.append(f"quality failures (expect.text, expect.judge): {s.quality_failures}")
    if s.drift_failures or s.drift_warnings:
        lines.append(
            f"visual drift failures: {s.drift_failures}  drift warnings: {s.drift_warnings}"
        )
    return lines
