"""The session's terminal summary: the ``imagegen`` section (and ``imagegen right-size``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..money.prices import format_usd
from .gate import CostDiff, CostLimit, gate_lines
from .summary import summarize, terminal_lines

#: one section of the summary: its title and its lines with their markup (red, bold, ...)
Section = tuple[str, list[tuple[str, dict[str, bool]]]]


@dataclass
class SummaryInput:
    """What the session knows at the end, for the summary."""

    results: Sequence[Mapping[str, Any]]
    estimating: bool = False
    finish_lines: Sequence[str] = ()
    budget: Mapping[str, float] | None = None  # the budget file's snapshot, when this run owns it
    cost_diff: CostDiff | None = None
    cost_limit: CostLimit | None = None
    report: str | None = None  # where the JSON report was written
    fake_server: bool = False
    groups: Sequence[Any] | None = None  # right-sizing groups (--imagegen-right-size)
    mask: Callable[[str], str] = field(default=lambda text: text)


def sections(s: SummaryInput) -> list[Section]:
    """The sections to print; none when the run had no imagegen case and no cost gate."""
    if (s.estimating or not s.results) and s.cost_diff is None:
        return []
    plain: dict[str, bool] = {}
    lines: list[tuple[str, dict[str, bool]]] = []
    if not s.estimating:
        lines += [(line, plain) for line in terminal_lines(summarize(s.results))]
        notes = dict.fromkeys(n for r in s.results for n in r.get("notes") or [])
        lines += [(s.mask(line), plain) for line in [*notes, *s.finish_lines]]
    if s.budget is not None:
        b = s.budget
        refused = int(b.get("refused", 0))
        lines.append(
            (
                f"budget: {format_usd(b['limit'])}  spent: {format_usd(b['spent'])}  "
                f"left: {format_usd(max(b['limit'] - b['spent'], 0.0))}"
                + (f"  requests refused: {refused}" if refused else ""),
                plain,
            )
        )
    if s.cost_diff is not None:
        exceeded = s.cost_limit is not None and s.cost_diff.exceeds(s.cost_limit)
        markup = {"red": exceeded, "bold": exceeded}
        lines += [(line, markup) for line in gate_lines(s.cost_diff, s.cost_limit)]
    if s.report is not None:
        lines.append((f"cost report: {s.report}", plain))
    if s.fake_server:
        lines.append(
            (
                "(--imagegen-fake-server: every images request of this session went to the "
                "built-in fake server; nothing was billed, and the ledger keeps it apart)",
                plain,
            )
        )
    out: list[Section] = [("imagegen", lines)]
    if s.groups and not s.estimating:
        from .rightsize import terminal_lines as right_size_lines

        out.append(
            ("imagegen right-size", [(s.mask(x), plain) for x in right_size_lines(list(s.groups))])
        )
    return out
