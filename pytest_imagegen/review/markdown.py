"""``--imagegen-markdown`` (and ``$GITHUB_STEP_SUMMARY``): the run as Markdown for a PR."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..money.prices import format_usd
from .summary import summarize

if TYPE_CHECKING:
    from .gate import CostDiff, CostLimit

MARKDOWN_CASE_ROWS = 200
EPSILON = 1e-9


#: characters that mean something to Markdown (or HTML inside it) in a table cell: each is
#: backslash-escaped, so text from a suite (a prompt, an id) reads as itself and can never
#: open a code span, a link, an image or a tag, or add a table cell
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def _md(text: object) -> str:
    """Plain text for a Markdown table cell."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def _code(text: object) -> str:
    """An id in a cell, in a code span: a backtick run longer than any inside it, spaces when
    it starts or ends with one; a pipe escaped (GitHub splits cells before code spans)."""
    flat = " ".join(str(text).splitlines()).replace("|", "\\|")
    runs = [len(m) for m in re.findall(r"`+", flat)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


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
