"""``--imagegen-estimate``: what a run would cost, without sending or running anything.

Per case: the list cost and whether a fresh cassette exists (one line of the
cassette file is read: its request fingerprint). Totals: a full live run
(``--imagegen-record-mode=all``) and a ``once`` recording (cases without a
fresh cassette). Ceiling violations are listed too, since those cases would
fail before sending.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .costs import format_usd
from .recording import fingerprint, read_fingerprint, suite_cassette_path
from .runner import RunContext
from .suite import CaseSpec


@dataclass
class EstimateRow:
    nodeid: str
    spec: CaseSpec
    list_cost: float
    cassette: str  # fresh | stale | missing | judge stale
    over_ceiling: float | None = None  # the ceiling, when the list cost is above it
    record_cost: float | None = None  # what recording costs when not the list cost (the judge)

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


def estimate(cases: Iterable[tuple[str, CaseSpec]], ctx: RunContext) -> Estimate:
    out = Estimate()
    for nodeid, spec in cases:
        cost = ctx.list_cost(spec)
        recorded = read_fingerprint(suite_cassette_path(spec.path, spec.id))
        if recorded is None:
            status = "missing"
        elif recorded == fingerprint(spec.request_body()):
            status = "fresh"
        else:
            status = "stale"
        ceiling = ctx.ceiling(spec)
        over = ceiling if ceiling is not None and cost > ceiling else None
        row = EstimateRow(nodeid, spec, cost, status, over)
        if status == "fresh" and spec.expect.judge is not None and _judge_stale(spec, ctx):
            row.cassette, row.record_cost = "judge stale", ctx.judge_list_cost(spec)
        out.rows.append(row)
    return out


def _judge_stale(spec: CaseSpec, ctx: RunContext) -> bool:
    """A fresh cassette whose recorded judge used another model or rubric (or none)."""
    from .errors import ImagegenError
    from .judging import config_for
    from .recording import recorded_meta

    cfg = config_for(spec, ctx)
    try:
        judged = recorded_meta(suite_cassette_path(spec.path, spec.id), "").get("judge")
    except ImagegenError:
        return True  # damaged: its test says so; recording it again would judge too
    if not isinstance(judged, dict) or cfg is None:
        return True
    return judged.get("model") != cfg.model or judged.get("rubric") != cfg.rubric


def render(est: Estimate, *, per_case: bool = True) -> list[str]:
    lines: list[str] = []
    if per_case and est.rows:
        width = min(max(len(r.nodeid) for r in est.rows), 90)
        settings = [
            f"{r.spec.model} {r.spec.size} {r.spec.quality or 'auto'} n={r.spec.n}"
            for r in est.rows
        ]
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
        if r.spec.right_size_group:
            groups.setdefault(r.nodeid.split("[", 1)[0], []).append(r)
    lines = []
    for key, rows in sorted(groups.items()):
        to_record = [r for r in rows if r.cassette != "fresh" and r.over_ceiling is None]
        lines.append(
            f"{key}: {len(rows)} variants, all of them live {format_usd(sum(r.list_cost for r in rows))}; "
            f"recording the {len(to_record)} without a fresh cassette "
            f"{format_usd(sum(r.list_cost for r in to_record))}"
        )
        for r in rows:
            excluded = f"  excluded by its use case: {r.spec.excluded}" if r.spec.excluded else ""
            lines.append(
                f"  {'-'.join(f'{k}={v}' for k, v in r.spec.matrix)}  "
                f"{format_usd(r.list_cost)}  cassette: {r.cassette}{excluded}"
            )
    return lines or ["no right-sizing groups (cases with a matrix over size, quality, n or model)"]
