"""``--imagegen-html=DIR``: the review page a product team decides from (SPEC §17).

``DIR/index.html`` has inline CSS and a small inline script (allowed by a
Content-Security-Policy hash, nothing else runs) and no external asset. Images
are previews in ``DIR/previews/`` (WebP, ≤ 512 px) linked to the full images
where they are stored, so the folder is a small fraction of the images' size
and can be uploaded as a CI artifact. At the top: cases by state, spend,
live-equivalent, budget and the cost gate's verdict. Per case: why it failed,
the prompt (and the one its baseline or cassette was made for), costs, the
accepted and current images with a difference view, OCR text, judge scores
with reasons, and for a stale case what changed and the re-record command.
Checkboxes make an ``approvals.json`` for ``pytest --imagegen-approve``; served
by ``--imagegen-review``, Approve/Reject buttons write baselines at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cassettes.files import write_text
from ..money.prices import format_usd
from .htmlassets import CSS, SCRIPT, csp
from .htmlcase import CaseView, Links, case_card, e
from .previews import Previews
from .states import FAILING, STATES, counts, rank, why_failed
from .summary import summarize

if TYPE_CHECKING:
    from ..api.redact import Redactor
    from .gate import CostDiff, CostLimit


@dataclass
class PageContext:
    """What the top of the page says besides the cases."""

    budget: Mapping[str, float] | None = None  # the session budget's snapshot
    cost_diff: CostDiff | None = None
    cost_limit: CostLimit | None = None
    right_size: Sequence[Any] | None = None  # right-sizing groups
    decided: Mapping[str, str] = field(default_factory=dict)  # review server: nodeid -> what


def _top(results: Sequence[Mapping[str, Any]], page: PageContext) -> str:
    s = summarize(results)
    found = counts(results)
    chips = "".join(
        f'<span class="{"bad" if state in FAILING else ""}" data-state="{e(state)}">'
        f"{n} {e(STATES[state])}</span>"
        for state, n in found.items()
    )
    lines = [
        f'<p class="counts"><b>{s.cases} cases</b>: {chips}</p>',
        f'<p class="money">spent this run {e(format_usd(s.spent))} · live-equivalent '
        f"{e(format_usd(s.list_cost))} (what a full live run costs) · saved by replay "
        f"{e(format_usd(s.saved))}</p>",
    ]
    if page.budget is not None:
        b = page.budget
        left = max(float(b.get("limit", 0.0)) - float(b.get("spent", 0.0)), 0.0)
        refused = int(b.get("refused", 0))
        lines.append(
            f'<p class="budget">budget {e(format_usd(b.get("limit", 0.0)))} · spent '
            f"{e(format_usd(b.get('spent', 0.0)))} · left {e(format_usd(left))}"
            + (f" · {refused} request(s) refused" if refused else "")
            + "</p>"
        )
    if page.cost_diff is not None:
        verdict = ""
        if page.cost_limit is not None:
            exceeded = page.cost_diff.exceeds(page.cost_limit)
            verdict = (
                f' · allowed increase {e(page.cost_limit)}: <span class="gate-'
                f'{"exceeded" if exceeded else "within"}">'
                f"{'EXCEEDED' if exceeded else 'within the limit'}</span>"
            )
        lines.append(
            f'<p class="gate">cost change vs baseline: {e(page.cost_diff.describe_change())}'
            f"{verdict}</p>"
        )
    return f'<div class="top" id="summary">{"".join(lines)}</div>'


def _right_size(groups: Sequence[Any], results: Sequence[Mapping[str, Any]], view: CaseView) -> str:
    """The variants of each right-sizing group side by side, with cost and verdict."""
    from .htmlcase import _figure
    from .rightsize import shown_cost_per_accepted

    by_id = {str(r.get("nodeid")): r for r in results}
    sections, any_failed = [], False
    for g in groups:
        cards, group_failed = [], False
        for v in g.variants:
            verdict = v.verdict(g.recommended)
            failed = bool(v.failed)
            group_failed |= failed
            rate = "n/a" if v.accept_rate is None else f"{v.accept_rate:.0%}"
            per = shown_cost_per_accepted(v.cost_per_accepted, v.accepted)
            cls = "variant" + (" recommended" if v.nodeid == g.recommended else "")
            cls += " failed" if failed else ""
            why = ""
            r = by_id.get(v.nodeid)
            if failed and r is not None and r.get("failure"):
                first = str(r.get("failure")).splitlines()[0]
                why = f'<p class="note">{e(first)}</p>'
            cards.append(
                f'<div class="{cls}" data-verdict="{e(verdict)}" data-nodeid="{e(v.nodeid)}">'
                f"{_figure(view, v.image_path, e(v.label))}"
                f"<p>list {e(format_usd(v.list_cost))} · accepted {v.accepted}/{v.images} "
                f"({e(rate)}) · per accepted image {e(per)}</p>"
                f'<p class="verdict">{e(verdict)}</p>{why}</div>'
            )
        any_failed |= group_failed
        note = f'<p class="note">{e(g.note)}</p>' if g.note else ""
        sections.append(
            f'<section class="group{" has-failed" if group_failed else ""}"><h2>{e(g.key)}</h2>'
            f"<p>passes at accept rate ≥ {g.min_accept_rate:.0%}; a variant whose test failed "
            f'is never recommended</p><div class="variants">{"".join(cards)}</div>{note}</section>'
        )
    return (
        f'<section id="right-size"{" class=has-failed" if any_failed else ""}>'
        "<h1>Right-sizing: the cheapest setting that meets the brief</h1>"
        + "".join(sections)
        + "</section>"
    )


def render(
    results: Sequence[Mapping[str, Any]],
    previews: Previews,
    links: Links,
    page: PageContext | None = None,
) -> str:
    """The page's HTML (previews are made in ``previews`` as needed)."""
    page = page or PageContext()
    server = links.token is not None
    view = CaseView(previews, links, page.decided, server=server)
    ordered = sorted(results, key=rank)
    body = "".join(case_card(r, view) for r in ordered)
    failing = sum(1 for r in results if why_failed(r))
    token = f' data-token="{e(links.token)}"' if server else ""
    how = (
        "Approve / Reject write the case's baseline at once (the current images, or the ones "
        "ticked)."
        if server
        else "Tick cases or images, download approvals.json and run "
        "<code>pytest --imagegen-approve=approvals.json</code> in the project."
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp())}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-imagegen review</title><style>{CSS}</style></head><body{token}>"
        "<h1>pytest-imagegen: visual review</h1>"
        f"{_top(results, page)}"
        '<input type="checkbox" id="only-failures" hidden>'
        '<div class="toolbar"><label class="toggle" for="only-failures">show failures only '
        f"({failing})</label>"
        '<button id="download-approvals" type="button" disabled>Download approvals.json</button>'
        f'<span class="note">{how}</span></div>'
        f"{_right_size(page.right_size, results, view) if page.right_size else ''}"
        f'<main id="cases">{body}</main><script>{SCRIPT}</script></body></html>\n'
    )


def write(
    directory: Path,
    results: Sequence[Mapping[str, Any]],
    redactor: Redactor | None = None,
    right_size: Sequence[Any] | None = None,
    page: PageContext | None = None,
) -> Path:
    """Write ``directory/index.html`` and its previews; return its path."""
    if redactor is not None:
        results = redactor.mask_data(list(results))
    page = page or PageContext()
    if right_size is not None:
        page.right_size = right_size
    directory.mkdir(parents=True, exist_ok=True)
    text = render(results, Previews(directory), Links(directory), page)
    index = directory / "index.html"
    write_text(index, text, redactor)
    return index
