"""One case on the review page: its state, why it failed, prompt, costs and images.

Every piece of text from a suite or a file (prompts, ids, params, OCR text,
judge reasons, failure messages) is HTML-escaped here; the page is masked for
API keys as a whole when written.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..money.prices import format_usd
from .previews import Preview, Previews, image_name
from .rightsize import economics, shown_cost_per_accepted
from .states import FAILING, STATES, states


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Links:
    """Where the page's images are: relative files (a static page, a CI artifact), or the
    review server's token-protected URLs."""

    page_dir: Path
    token: str | None = None
    full_images: dict[str, Path] = field(default_factory=dict)  # name -> file (server)

    def _q(self) -> str:
        return f"?token={quote(self.token)}" if self.token else ""

    def preview(self, name: str) -> str:
        prefix = "/previews/" if self.token else "previews/"
        return e(prefix + quote(name) + self._q())

    def full(self, path: str | Path) -> str:
        name = Path(path).name
        if self.token:
            self.full_images[name] = Path(path)
            return e("/full/" + quote(name) + self._q())
        try:
            relative = os.path.relpath(path, self.page_dir)
        except ValueError:
            relative = Path(path).as_uri()
        return e(quote(relative.replace(os.sep, "/")))


@dataclass
class CaseView:
    """What one card needs besides the result: the page's previews and links."""

    previews: Previews
    links: Links
    decided: Mapping[str, str] = field(default_factory=dict)  # nodeid -> what was decided
    server: bool = False


def _figure(view: CaseView, path: str | None, caption: str, cls: str = "") -> str:
    shown: Preview | None = view.previews.preview(path) if path else None
    if shown is None:
        body = '<p class="none">image not available</p>'
    else:
        body = (
            f'<a href="{view.links.full(str(path))}" title="full image ({shown.width} x '
            f' {shown.height}, {shown.bytes // 1024} KB)"><img src="{view.links.preview(shown.name)}"'
            f' alt="" loading="lazy"></a>'
        )
    return f'<figure class="{e(cls)}">{body}<figcaption>{caption}</figcaption></figure>'


def _money_row(r: Mapping[str, Any]) -> str:
    parts = [f"list {format_usd(r.get('list_cost') or 0.0)}"]
    status = r.get("cassette")
    if status == "replayed":
        parts.append(f"recorded for {format_usd(r.get('saved') or 0.0)} (this replay: $0)")
    else:
        parts.append(f"this run {format_usd(r.get('actual_cost') or 0.0)}")
    if r.get("judge_cost"):
        parts.append(f"judge {format_usd(r.get('judge_cost') or 0.0)}")
    if r.get("max_cost") is not None:
        over = " (exceeded)" if r.get("ceiling") else ""
        parts.append(f"max_cost {format_usd(r.get('max_cost') or 0.0)}{over}")
    econ = economics(r)
    if econ["accept_rate"] is not None:
        parts.append(
            f"accepted {r.get('accepted')}/{r.get('images')} · per accepted image "
            f"{shown_cost_per_accepted(econ['cost_per_accepted'], r.get('accepted'))}"
        )
    parts.append(f"cassette {status or 'none'}")
    return f"<tr><td>cost</td><td>{e(' · '.join(parts))}</td></tr>"


def _params(r: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in (r.get("request") or {}).items()
    )
    rows += _money_row(r)
    thresholds = (r.get("drift") or {}).get("thresholds") or {}
    if thresholds:
        limits = ", ".join(f"{e(a)} ≤ {e(t)}" for a, t in thresholds.items())
        rows += f"<tr><td>drift thresholds</td><td>{limits}</td></tr>"
    return f'<table class="params">{rows}</table>'


def _todo(r: Mapping[str, Any]) -> str:
    """What to do for a case that could not make images: the changes, the command, the cost."""
    out = ""
    changes = r.get("stale_changes")
    if changes:
        items = "".join(f"<li><code>{e(c)}</code></li>" for c in changes)
        out += f'<div class="changes"><h3>changed since it was recorded</h3><ul>{items}</ul></div>'
    command = r.get("rerecord_command")
    if command:
        cost = format_usd(r.get("rerecord_cost") or 0.0)
        out += (
            f'<p class="command">{"re-record" if changes else "record"} it: '
            f"<code>{e(str(command).strip('`'))}</code> (estimated cost {e(cost)})</p>"
        )
    if r.get("ceiling") and r.get("max_cost") is not None:
        which = "list" if r.get("ceiling") == "list" else "actual"
        spent = float((r.get("list_cost") if which == "list" else r.get("actual_cost")) or 0.0)
        out += (
            f'<p class="command">{which} cost {e(format_usd(spent))} is above max_cost '
            f"{e(format_usd(r.get('max_cost') or 0.0))}: lower n, size or quality, or raise "
            "max_cost</p>"
        )
    return out


def _prompts(r: Mapping[str, Any]) -> str:
    prompt = str(r.get("prompt") or "")
    out = f'<p class="prompt" data-kind="now">{e(prompt)}</p>'
    info = r.get("baseline_info") or {}
    old = info.get("prompt")
    if isinstance(old, str) and old != prompt:
        out += f'<p class="prompt old" data-kind="baseline">accepted for: {e(old)}</p>'
    elif info.get("same_prompt") is False and info.get("images"):
        out += (
            '<p class="prompt old" data-kind="baseline">the baseline was accepted for another '
            "prompt (its text was not recorded)</p>"
        )
    recorded = r.get("recorded_prompt")
    if isinstance(recorded, str) and recorded != prompt:
        out += f'<p class="prompt old" data-kind="recorded">recorded for: {e(recorded)}</p>'
    out += "".join(
        f'<p class="prompt revised">revised by the API: {e(p)}</p>'
        for p in r.get("revised_prompts") or []
        if p
    )
    return out


def _baseline(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    info = r.get("baseline_info")
    if info is not None:
        return [dict(i) for i in info.get("images") or []]
    paths = (r.get("drift") or {}).get("baseline") or []
    return [{"path": str(p), "sha256": (image_name(p) or ("", ""))[0]} for p in paths]


def _quality_caption(r: Mapping[str, Any], i: int, recorded: Mapping[str, Any] | None) -> str:
    out = ""
    texts = r.get("text") or []
    if i < len(texts) and texts[i] is not None:
        out += f'<br><span class="ocr">OCR read: {e(" / ".join(texts[i]) or "nothing")}</span>'
    judge = r.get("judge") or {}
    judged = (judge.get("images") or [])[i : i + 1]
    verdict = judged[0] if judged else recorded if recorded and "score" in recorded else None
    if verdict is not None:
        minimum = judge.get("min_score")
        score = verdict.get("score")
        failed = (
            isinstance(score, (int, float))
            and isinstance(minimum, (int, float))
            and score < minimum
        )
        needs = f" (needs {e(minimum)})" if minimum is not None else ""
        out += (
            f'<br><span class="judge{" over" if failed else ""}">judge score {e(score)}{needs}: '
            f"{e(verdict.get('reason') or 'no reason given')}</span>"
        )
    return out


def _images(r: Mapping[str, Any], view: CaseView) -> str:
    baseline = _baseline(r)
    drift = r.get("drift") or {}
    current = list(drift.get("images") or [])
    recorded_only = not current and bool(r.get("recorded_images"))
    if recorded_only:
        current = list(r.get("recorded_images") or [])
    accepted_shas = {b.get("sha256") for b in baseline}
    rows = []
    approvable = bool(drift.get("images"))
    for i, img in enumerate(current):
        sha, path = str(img.get("sha256") or ""), str(img.get("path") or "")
        match = next((b for b in baseline if b.get("sha256") == sha), None)
        if match is None and baseline:
            match = baseline[i] if i < len(baseline) else baseline[0]
        parts = []
        over = set(img.get("over") or [])
        for algo, dist in (img.get("distances") or {}).items():
            mark = "over" if algo in over else ""
            parts.append(f'<span class="{mark}">{e(algo)} {e(dist)}</span>')
        label = "recorded image" if recorded_only else "current image"
        caption = f"{label} {i + 1}" + (f": {', '.join(parts)}" if parts else "")
        caption += _quality_caption(r, i, img if recorded_only else None)
        if approvable:
            caption += (
                f'<br><label class="pick"><input type="checkbox" class="approve-image" '
                f'data-sha256="{e(sha)}"> approve this image</label>'
            )
        cells = [
            _figure(view, match.get("path"), _accepted_caption(match, r), "baseline")
            if match
            else '<figure class="baseline"><p class="none">no accepted baseline</p></figure>',
            _figure(view, path, caption, "current"),
            _difference(view, match, path, sha in accepted_shas) if match else "",
        ]
        rows.append(f'<div class="pair">{"".join(cells)}</div>')
    shown = {str(img.get("sha256")) for img in current}
    for b in baseline[len(current) :] if current else baseline:
        if b.get("sha256") not in shown:
            rows.append(
                f'<div class="pair">{_figure(view, b.get("path"), _accepted_caption(b, r), "baseline")}'
                f'<figure class="current"><p class="none">{_no_current(r)}</p></figure></div>'
            )
    if not rows:
        rows.append(
            '<div class="pair"><figure class="baseline"><p class="none">no accepted baseline'
            f'</p></figure><figure class="current"><p class="none">{_no_current(r)}</p></figure>'
            "</div>"
        )
    note = ""
    if recorded_only:
        note = (
            '<p class="note">the test stopped before checking images; shown: what its cassette '
            "holds" + (" (recorded for the old request)" if r.get("stale_changes") else "") + "</p>"
        )
    problem = (r.get("baseline_info") or {}).get("problem")
    if problem:
        note += f'<p class="note over">{e(problem)}</p>'
    return f'<div class="images">{note}{"".join(rows)}</div>'


def _no_current(r: Mapping[str, Any]) -> str:
    if r.get("cassette") in ("stale", "missing") or r.get("ceiling"):
        return "no current image: nothing was generated (see above)"
    return "no current image"


def _accepted_caption(b: Mapping[str, Any], r: Mapping[str, Any]) -> str:
    caption = "accepted baseline"
    if b.get("accepted"):
        caption += f" ({e(b.get('accepted'))})"
    approved = (r.get("baseline_info") or {}).get("approved")
    if approved:
        caption += f"<br>approved by {e(approved.get('by') or '?')} at {e(approved.get('time'))}"
    return caption


def _difference(view: CaseView, baseline: Mapping[str, Any], current: str, same: bool) -> str:
    if same:
        return (
            '<figure class="difference"><p class="none">identical to the accepted image</p>'
            "</figure>"
        )
    diff = view.previews.difference(str(baseline.get("path")), current)
    old = view.previews.preview(str(baseline.get("path")))
    new = view.previews.preview(current)
    if diff is None or old is None or new is None:
        return ""
    scaled = " (baseline scaled to the current size)" if diff.resized else ""
    return (
        '<figure class="difference">'
        f'<div class="compare"><img class="under" src="{view.links.preview(old.name)}" alt="">'
        f'<img class="top" src="{view.links.preview(new.name)}" alt="">'
        '<input type="range" min="0" max="100" value="50" aria-label="baseline ← → current">'
        "</div>"
        f'<img class="diff" src="{view.links.preview(diff.name)}" alt="" loading="lazy">'
        f"<figcaption>slide: baseline (left) / current (right); below: per-pixel difference, "
        f"{diff.changed:.0%} of pixels changed visibly{scaled}</figcaption></figure>"
    )


def case_card(r: Mapping[str, Any], view: CaseView) -> str:
    found = states(r)
    failing = any(s in FAILING for s in found)
    cls = "failed" if failing else ("warned" if "warn" in found else "passed")
    chips = "".join(f'<span class="status s-{e(s)}">{e(STATES[s])}</span>' for s in found)
    nodeid = str(r.get("nodeid"))
    per = economics(r)["cost_per_accepted"]
    approvable = bool((r.get("drift") or {}).get("images"))
    pick = (
        '<label class="pick case-pick"><input type="checkbox" class="approve-case"> approve</label>'
        if approvable
        else ""
    )
    failure = r.get("failure")
    buttons = ""
    if view.server and approvable:
        buttons = (
            '<div class="decide-buttons"><button class="decide" data-action="approve">Approve'
            '</button><button class="decide" data-action="reject">Reject</button></div>'
        )
    decided = view.decided.get(nodeid)
    decision = f'<p class="decision done">{e(decided)}</p>' if decided else '<p class="decision">'
    decision += "" if decided else "</p>"
    return (
        f'<section class="case {cls}" data-status="{e(cls)}" data-states="{e(" ".join(found))}" '
        f'data-nodeid="{e(nodeid)}" data-cost-per-accepted="{"" if per is None else per}">'
        f"<header>{pick}<h2>{e(nodeid)}</h2>{chips}</header>"
        + (f'<pre class="failure">{e(failure)}</pre>' if failure and failing else "")
        + _todo(r)
        + _prompts(r)
        + _params(r)
        + _images(r, view)
        + buttons
        + decision
        + "</section>"
    )


def approvable_cases(results: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for r in results if (r.get("drift") or {}).get("images"))
