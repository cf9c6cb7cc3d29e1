"""Session figures and their renderings: terminal lines, JSON report, Markdown, cost gate.

Pure functions over the per-case result dicts that travel on test reports
(so the pytest-xdist controller sees every worker's cases).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .costs import format_usd
from .errors import ConfigError

if TYPE_CHECKING:
    from .redact import Redactor

REPORT_FORMAT = 1
#: per-case fields of the JSON report (SPEC §5), in this order
CASE_FIELDS = (
    "nodeid", "suite", "category", "model", "size", "quality", "n",
    "list_cost", "actual_cost", "max_cost", "cassette", "saved", "ceiling",
    "drift", "outcome", "revised_prompts", "text", "accepted", "judge", "judge_cost",
    "images", "accept_rate", "cost_per_accepted", "group", "variant",
)  # fmt: skip
MARKDOWN_CASE_ROWS = 200
EPSILON = 1e-9


@dataclass
class Summary:
    cases: int = 0
    list_cost: float = 0.0  # live-equivalent: what a full live run of these cases would cost
    spent: float = 0.0
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
    if s.ceiling_failures:
        lines.append(f"cost ceiling failures: {s.ceiling_failures}")
    if s.quality_failures:
        lines.append(f"quality failures (expect.text, expect.judge): {s.quality_failures}")
    if s.drift_failures or s.drift_warnings:
        lines.append(
            f"visual drift failures: {s.drift_failures}  drift warnings: {s.drift_warnings}"
        )
    return lines


# ------------------------------------------------------------------ JSON report


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
    from .files import write_text

    data = redactor.mask_data(report) if redactor else report
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", redactor)


# ------------------------------------------------------------------- cost gate


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


# --------------------------------------------------------------------- Markdown


#: characters that mean something to Markdown or HTML, written as numeric entities so
#: text from a suite (a prompt, an id) can never open a code span, a link or an image
_MD_SPECIAL = {ord(c): f"&#{ord(c)};" for c in "\\`*_{}[]()<>#+!|~&\"':"}


def _md(text: object) -> str:
    """Plain text for a Markdown table cell: every special character as an entity."""
    return " ".join(str(text).splitlines()).translate(_MD_SPECIAL)


def _code(text: object) -> str:
    """An id in a cell, shown in code font without a backtick code span (which a backtick
    in the text would close)."""
    return f"<code>{_md(text)}</code>"


def markdown(
    results: Sequence[Mapping[str, Any]],
    diff: CostDiff | None = None,
    limit: CostLimit | None = None,
    right_size: Sequence[Any] | None = None,
) -> str:
    s = summarize(results)
    out = [
        "## pytest-imagegen",
        "",
        "| cases | replayed | recorded | live | no cassette | stale | spent | live-equivalent "
        "| saved by replay | ceiling failures | drift failures |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s.cases} | {s.replayed} | {s.recorded} | {s.live} | {s.missing} | {s.stale} "
        f"| {format_usd(s.spent)} | {format_usd(s.list_cost)} | {format_usd(s.saved)} "
        f"| {s.ceiling_failures} | {s.drift_failures} |",
        "",
    ]
    if diff is not None:
        out += ["### Cost change vs baseline", "", f"Total: {diff.describe_change()}"]
        if limit is not None:
            verdict = "**exceeded**" if diff.exceeds(limit) else "within the limit"
            out.append(f"Allowed increase: {limit}: {verdict}")
        rows = (
            [(n, "added", "", format_usd(v)) for n, v in diff.added]
            + [(n, "removed", format_usd(v), "") for n, v in diff.removed]
            + [(n, "changed", format_usd(o), format_usd(v)) for n, o, v in diff.changed]
        )
        if rows:
            out += ["", "| case | change | old | new |", "|---|---|---:|---:|"]
            out += [f"| {_code(n)} | {c} | {o} | {v} |" for n, c, o, v in rows]
        out.append("")
    ordered = sorted(results, key=lambda r: (r.get("outcome") != "failed", str(r.get("nodeid"))))
    out += [
        "### Cases",
        "",
        "| case | model | size | quality | n | list cost | actual | cassette | drift | accepted "
        "| cost per accepted | outcome |",
        "|---|---|---|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for r in ordered[:MARKDOWN_CASE_ROWS]:
        out.append(
            f"| {_code(r.get('nodeid'))} | {_md(r.get('model'))} | {_md(r.get('size'))} "
            f"| {_md(r.get('quality') or 'auto')} | {r.get('n')} "
            f"| {format_usd(r.get('list_cost') or 0.0)} | {format_usd(r.get('actual_cost') or 0.0)} "
            f"| {_md(r.get('cassette'))} | {_md((r.get('drift') or {}).get('status') or '')} "
            f"| {_accepted_cells(r)} | {_md(r.get('outcome'))} |"
        )
    out += _quality_rows(ordered[:MARKDOWN_CASE_ROWS])
    if right_size:
        from .rightsize import markdown as right_size_markdown

        out += right_size_markdown(list(right_size), _md, _code)
    revised = [
        (r, p) for r in ordered[:MARKDOWN_CASE_ROWS] for p in r.get("revised_prompts") or [] if p
    ]
    if revised:
        out += ["", "### Revised prompts", "", "| case | revised by the API |", "|---|---|"]
        out += [f"| {_code(r.get('nodeid'))} | {_md(p)} |" for r, p in revised]
    if len(ordered) > MARKDOWN_CASE_ROWS:
        out.append(
            f"\n... and {len(ordered) - MARKDOWN_CASE_ROWS} more cases (see the JSON report)"
        )
    return "\n".join(out) + "\n"


def _quality_rows(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """A table of what OCR read and what the judge said, for the cases that check quality."""
    checked = [r for r in results if r.get("text") is not None or r.get("judge")]
    if not checked:
        return []
    out = [
        "",
        "### Quality checks",
        "",
        "| case | accepted | OCR read | judge |",
        "|---|---:|---|---|",
    ]
    for r in checked:
        read = "; ".join(" / ".join(lines) or "nothing" for lines in r.get("text") or [])
        judged = r.get("judge") or {}
        scores = ", ".join(
            f"{i.get('score')} ({i.get('reason')})" for i in judged.get("images") or []
        )
        verdict = f"{scores}; needs {judged.get('min_score')}" if judged else ""
        images = len(r.get("text") or []) or len(judged.get("images") or [])
        out.append(
            f"| {_code(r.get('nodeid'))} | {r.get('accepted')}/{images} | {_md(read)} "
            f"| {_md(verdict)} |"
        )
    return out


def _accepted_cells(r: Mapping[str, Any]) -> str:
    """``accepted/images | cost per accepted`` cells of the case table."""
    from .rightsize import economics, shown_cost_per_accepted

    if r.get("images") is None or r.get("accepted") is None:
        return " | "
    per = economics(r)["cost_per_accepted"]
    return (
        f"{r.get('accepted')}/{r.get('images')} | {shown_cost_per_accepted(per, r.get('accepted'))}"
    )
