"""``--imagegen-estimate``: what a run would cost, without sending or running anything.

Per case: the list cost and whether a fresh cassette exists (one line of the
cassette file is read: its request fingerprint). Totals: a full live run
(``--imagegen-record-mode=all``) and a ``once`` recording (cases without a
fresh cassette). Ceiling violations are listed too, since those cases would
fail before sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..money.prices import format_usd


@dataclass
class EstimateRow:
    nodeid: str
    setting: str  # "gpt-image-2 1024x1024 low n=1"
    list_cost: float
    cassette: str  # fresh | stale | missing | judge stale
    over_ceiling: float | None = None  # the ceiling, when the list cost is above it
    record_cost: float | None = None  # what recording costs when not the list cost (the judge)
    group: str | None = None  # right-sizing group (a matrix over size/quality/n/model)
    variant: str = ""  # the cell of that matrix, e.g. "quality=low-size=1024x1024"
    excluded: str | None = None  # the use-case limit that rules the variant out

    @property
    def to_record_cost(self) -> float:
        return self.list_cost if self.record_cost is None else self.record_cost


@dataclass
class Estimate:
    rows: list[EstimateRow] = field(default_factory=list)

    @property
    def live_total(self) -> float:
        return sum(r.list_cost for r in self.rows if r.over_ceiling is None)

    @property
    def to_record(self) -> list[EstimateRow]:
        return [r for r in self.rows if r.cassette != "fresh" and r.over_ceiling is None]

    @property
    def once_total(self) -> float:
        return sum(r.to_record_cost for r in self.to_record)


def render(est: Estimate, *, per_case: bool = True) -> list[str]:
    lines: list[str] = []
    if per_case and est.rows:
        width = min(max(len(r.nodeid) for r in est.rows), 90)
        settings = [r.setting for r in est.rows]
        setting_width = max(map(len, settings))
        price_width = max(len(format_usd(r.list_cost)) for r in est.rows)
        for r, setting in zip(est.rows, settings, strict=True):
            note = (
                f"  over max_cost {format_usd(r.over_ceiling)}: would fail before sending"
                if r.over_ceiling is not None
                else ""
            )
            lines.append(
                f"{r.nodeid:<{width}}  {setting:<{setting_width}}  "
                f"{format_usd(r.list_cost):>{price_width}}  cassette: {r.cassette}{note}"
            )
        lines.append("")
    over = sum(1 for r in est.rows if r.over_ceiling is not None)
    lines.append(f"cases: {len(est.rows)}" + (f" ({over} over their max_cost)" if over else ""))
    lines.append(f"full live run (--imagegen-record-mode=all): {format_usd(est.live_total)}")
    lines.append(
        f"once recording (--imagegen-record-mode=once, {len(est.to_record)} cases without a "
        f"fresh cassette): {format_usd(est.once_total)}"
    )
    lines.append("nothing was sent and no test was run")
    return lines


def right_size_lines(est: Estimate) -> list[str]:
    """``--imagegen-estimate --imagegen-right-size``: what recording each group would cost."""
    groups: dict[str, list[EstimateRow]] = {}
    for r in est.rows:
        if r.group is not None:
            groups.setdefault(r.group, []).append(r)
    lines = []
    for key, rows in sorted(groups.items()):
        to_record = [r for r in rows if r.cassette != "fresh" and r.over_ceiling is None]
        lines.append(
            f"{key}: {len(rows)} variants, all of them live {format_usd(sum(r.list_cost for r in rows))}; "
            f"recording the {len(to_record)} without a fresh cassette "
            f"{format_usd(sum(r.list_cost for r in to_record))}"
        )
        for r in rows:
            excluded = f"  excluded by its use case: {r.excluded}" if r.excluded else ""
            lines.append(
                f"  {r.variant}  {format_usd(r.list_cost)}  cassette: {r.cassette}{excluded}"
            )
    return lines or ["no right-sizing groups (cases with a matrix over size, quality, n or model)"]
