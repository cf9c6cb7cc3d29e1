"""Cost per accepted image, and the cheapest setting that still meets the brief (SPEC §14).

Pure functions over the per-case result dicts (the same ones the reports use,
merged on the xdist controller), so ``-n 2`` gives the same report as ``-n 0``.

* Per case: ``accept_rate`` = images that passed every quality check ÷ images
  generated; ``cost_per_accepted`` = what the case cost ÷ accepted images
  (``None``, shown as "none accepted", when nothing passed). A case's cost is what its
  images cost when they were made: spent now, or recorded in its cassette for
  a replay (the list cost when neither is known).
* A case with a ``matrix`` over size, quality, n or model is a group; its cells
  are the variants. The recommendation is the cheapest variant per accepted
  image whose accept rate reaches ``expect.min_accept_rate`` and that its
  use-case profile allows; the saving is measured against the most expensive
  passing variant. With the recommended variant's accept rate ``p``, one
  request of ``n`` independent images yields an accepted one with probability
  ``1 - (1 - p)^n``: expected requests ``1 / (1 - (1 - p)^n)`` and expected
  cost that times the request's price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..money.prices import format_usd
from .states import why_failed

#: fewer images than this in a variant: its accept rate is not worth much
MIN_SAMPLE = 4
ADVICE_N = (1, 2, 4)
NONE_ACCEPTED = "none accepted"


def case_cost(r: Mapping[str, Any]) -> float:
    """What the case's images (and judge) cost when they were made."""
    status = r.get("cassette")
    if status in ("recorded", "live"):
        return float(r.get("actual_cost") or 0.0)
    if status == "replayed" and r.get("saved"):
        return float(r.get("saved") or 0.0)
    return float(r.get("list_cost") or 0.0)


def economics(r: Mapping[str, Any]) -> dict[str, Any]:
    """``accept_rate`` and ``cost_per_accepted`` of one case (``None`` when unknown)."""
    images, accepted = r.get("images"), r.get("accepted")
    if not images or accepted is None:
        return {"accept_rate": None, "cost_per_accepted": None}
    return {
        "accept_rate": round(accepted / images, 4),
        "cost_per_accepted": round(case_cost(r) / accepted, 6) if accepted else None,
    }


def shown_cost_per_accepted(value: float | None, accepted: Any) -> str:
    if value is not None:
        return format_usd(value)
    return NONE_ACCEPTED if accepted == 0 else "n/a"


@dataclass
class Variant:
    nodeid: str
    label: str
    n: int
    list_cost: float
    cost: float
    images: int
    accepted: int
    accept_rate: float | None
    cost_per_accepted: float | None
    passing: bool
    excluded: str | None = None  # the use-case profile's limit that rules it out
    small_sample: bool = False
    image_path: str | None = None  # one current image, for the review page
    failed: str | None = None  # why its test failed (never recommended then)

    def verdict(self, recommended: str | None) -> str:
        if self.nodeid == recommended:
            return "recommended"
        if self.failed:
            return f"failed: {self.failed}"
        if self.excluded:
            return f"excluded: {self.excluded}"
        return "passes" if self.passing else "below the accept rate"


@dataclass
class Advice:
    n: int
    requests: float | None  # expected requests for one accepted image; None: never
    cost: float | None


@dataclass
class Group:
    key: str
    min_accept_rate: float
    variants: list[Variant] = field(default_factory=list)
    recommended: str | None = None  # nodeid
    baseline: str | None = None  # the most expensive passing variant
    saving: float | None = None
    saving_percent: float | None = None
    advice: list[Advice] = field(default_factory=list)
    small_sample: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def advice_for(p: float, per_image_price: float) -> list[Advice]:
    """Expected requests and cost to get one accepted image at n = 1, 2, 4."""
    out = []
    for n in ADVICE_N:
        success = 1 - (1 - p) ** n
        if success <= 0:
            out.append(Advice(n, None, None))
            continue
        requests = 1 / success
        out.append(Advice(n, round(requests, 4), round(requests * per_image_price * n, 6)))
    return out


def groups(results: Iterable[Mapping[str, Any]]) -> list[Group]:
    """Every right-sizing group of the run, variants ranked by cost per accepted image."""
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        if r.get("group"):
            by_key.setdefault(str(r["group"]), []).append(r)
    return [_group(key, members) for key, members in sorted(by_key.items())]


def _rank(v: Variant) -> tuple[int, float, float, str]:
    return (
        v.cost_per_accepted is None,
        v.cost_per_accepted if v.cost_per_accepted is not None else 0.0,
        v.list_cost,
        v.nodeid,
    )


def _group(key: str, members: list[Mapping[str, Any]]) -> Group:
    minimum = min(float(r.get("min_accept_rate") or 1.0) for r in members)
    group = Group(key, minimum)
    for r in members:
        e = economics(r)
        rate = e["accept_rate"]
        images = int(r.get("images") or 0)
        current = ((r.get("drift") or {}).get("images") or [{}])[0].get("path")
        failed = why_failed(r)
        group.variants.append(
            Variant(
                nodeid=str(r.get("nodeid")),
                label=str(r.get("variant") or r.get("nodeid")),
                n=int(r.get("n") or 1),
                list_cost=float(r.get("list_cost") or 0.0),
                cost=case_cost(r),
                images=images,
                accepted=int(r.get("accepted") or 0),
                accept_rate=rate,
                cost_per_accepted=e["cost_per_accepted"],
                passing=not failed and rate is not None and rate >= minimum - 1e-9,
                excluded=r.get("excluded"),
                small_sample=images < MIN_SAMPLE,
                image_path=str(current) if current else None,
                failed=failed,
            )
        )
    group.variants.sort(key=_rank)
    eligible = [v for v in group.variants if v.passing and not v.excluded]
    if not eligible:
        group.note = (
            f"no variant reached the accept rate {minimum:.0%}"
            + (" within its use-case profile" if any(v.passing for v in group.variants) else "")
            + (" with a passing test" if any(v.failed for v in group.variants) else "")
            + "; nothing to recommend"
        )
        return group
    best = eligible[0]
    dearest = max(eligible, key=lambda v: (v.cost_per_accepted or 0.0, v.nodeid))
    group.recommended, group.baseline = best.nodeid, dearest.nodeid
    if best.cost_per_accepted is not None and dearest.cost_per_accepted:
        group.saving = round(dearest.cost_per_accepted - best.cost_per_accepted, 6)
        group.saving_percent = round(100 * group.saving / dearest.cost_per_accepted, 1)
    per_image = best.list_cost / best.n if best.n else best.list_cost
    group.advice = advice_for(best.accept_rate or 0.0, per_image)
    group.small_sample = best.small_sample
    if best.small_sample:
        group.note = (
            f"only {best.images} image(s) behind the recommendation: too few to trust "
            f"(at least {MIN_SAMPLE}); raise n or record the group again before deciding"
        )
    return group


# ---------------------------------------------------------------- renderings


def terminal_lines(found: list[Group]) -> list[str]:
    lines: list[str] = []
    for g in found:
        lines.append(f"{g.key}  (passes at accept rate >= {g.min_accept_rate:.0%})")
        width = max(len(v.label) for v in g.variants)
        for v in g.variants:
            mark = "*" if v.nodeid == g.recommended else " "
            rate = "n/a" if v.accept_rate is None else f"{v.accept_rate:.0%}"
            why = f"  excluded: {v.excluded}" if v.excluded else ""
            why = f"  FAILED: {v.failed}" if v.failed else why
            few = "  (few images)" if v.small_sample else ""
            lines.append(
                f"  {mark} {v.label:<{width}}  list {format_usd(v.list_cost)}  accepted "
                f"{v.accepted}/{v.images} ({rate})  per accepted "
                f"{shown_cost_per_accepted(v.cost_per_accepted, v.accepted)}{few}{why}"
            )
        lines += _summary_lines(g)
    return lines


def _summary_lines(g: Group) -> list[str]:
    lines = []
    best = next((v for v in g.variants if v.nodeid == g.recommended), None)
    if best is not None:
        saving = ""
        if g.saving is not None and g.baseline != g.recommended:
            dearest = next(v for v in g.variants if v.nodeid == g.baseline)
            saving = (
                f"; saves {format_usd(g.saving)} per accepted image ({g.saving_percent:g}%) "
                f"against {dearest.label}"
            )
        lines.append(f"  recommended: {best.label}{saving}")
        parts = []
        for a in g.advice:
            if a.requests is None:
                parts.append(f"n={a.n}: never")
            else:
                parts.append(f"n={a.n}: {a.requests:.2f} requests, {format_usd(a.cost or 0.0)}")
        lines.append(
            "  one accepted image takes on average: " + "; ".join(parts)
            + " (use the smallest n that supports the workflow)"
        )  # fmt: skip
    if g.note:
        lines.append(f"  note: {g.note}")
    return lines


def markdown(found: list[Group], md: Any, code: Any) -> list[str]:
    """Markdown tables (``md``/``code`` escape cells as the report module does)."""
    if not found:
        return []
    out = ["", "### Right-sizing: the cheapest setting that meets the brief"]
    for g in found:
        out += [
            "",
            f"**{md(g.key)}** (passes at accept rate ≥ {g.min_accept_rate:.0%})",
            "",
            "| variant | list cost | accepted | cost per accepted image | verdict |",
            "|---|---:|---:|---:|---|",
        ]
        for v in g.variants:
            verdict = v.verdict(g.recommended)
            verdict = "**recommended**" if verdict == "recommended" else md(verdict)
            few = " (few images)" if v.small_sample else ""
            out.append(
                f"| {code(v.label)} | {format_usd(v.list_cost)} | {v.accepted}/{v.images}{few} "
                f"| {shown_cost_per_accepted(v.cost_per_accepted, v.accepted)} | {verdict} |"
            )
        out += [""] + [f"- {md(line.strip())}" for line in _summary_lines(g)]
    return out
