"""A case's state for people: what failed, in the words the review page and reports use.

Pure, over the per-case result dicts. A case can be in several failing states
at once (every check runs: a failed judge and a drift are both reported); its
first state orders the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: state -> label, most urgent first (the order of the page and of the counts)
STATES: dict[str, str] = {
    "stale": "stale cassette",
    "missing": "no cassette",
    "ceiling": "over its cost ceiling",
    "budget": "over the budget",
    "expect": "count/size/format failed",
    "quality": "quality check failed",
    "drift": "drift failed",
    "no-baseline": "no accepted baseline",
    "error": "failed",
    "warn": "drift warning",
    "passed": "passed",
    "skipped": "skipped",
}
FAILING = frozenset(STATES) - {"warn", "passed", "skipped"}


def states(r: Mapping[str, Any]) -> list[str]:
    """Every state of one case, most urgent first (at least one)."""
    failed = r.get("outcome") == "failed"
    checks = set(r.get("failed_checks") or [])
    drift = str((r.get("drift") or {}).get("status") or "")
    found = []
    if r.get("cassette") == "stale":
        found.append("stale")
    if r.get("cassette") == "missing":
        found.append("missing")
    if r.get("ceiling"):
        found.append("ceiling")
    if "budget" in checks:
        found.append("budget")
    if "expect" in checks:
        found.append("expect")
    if r.get("quality_check") == "fail":
        found.append("quality")
    if drift == "fail":
        found.append("drift")
    if drift == "missing" and failed:
        found.append("no-baseline")
    if failed and not found:
        found.append("error")
    if drift == "warn":
        found.append("warn")
    if not found:
        found.append("skipped" if r.get("outcome") == "skipped" else "passed")
    return found


def is_failing(r: Mapping[str, Any]) -> bool:
    return r.get("outcome") == "failed" or bool(FAILING.intersection(states(r)))


def labels(r: Mapping[str, Any]) -> list[str]:
    return [STATES[s] for s in states(r)]


def why_failed(r: Mapping[str, Any]) -> str | None:
    """``"drift failed, quality check failed"`` for a failing case, ``None`` otherwise."""
    failing = [STATES[s] for s in states(r) if s in FAILING]
    return ", ".join(failing) if failing else None


def rank(r: Mapping[str, Any]) -> tuple[int, str]:
    """Sort key of the page: failures first (most urgent state first), then by node id."""
    order = list(STATES)
    return order.index(states(r)[0]), str(r.get("nodeid"))


def counts(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Cases per state (a case with several failing states counts in each)."""
    out = dict.fromkeys(STATES, 0)
    for r in results:
        for s in states(r):
            out[s] += 1
    return {s: n for s, n in out.items() if n}
