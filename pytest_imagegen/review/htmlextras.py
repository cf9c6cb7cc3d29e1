"""With pytest-html (``--html=report.html``): each case's costs, verdict and a preview as
extras of its row (``report.extras``), so that report shows what the review page shows
in brief. Nothing happens when pytest-html is not installed or not asked for."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..money.prices import format_usd
from .previews import Previews
from .rightsize import economics, shown_cost_per_accepted
from .states import labels


def wanted(config: Any) -> bool:
    """pytest-html is active and writing a report."""
    return bool(config.pluginmanager.hasplugin("html") and getattr(config.option, "htmlpath", None))


def summary_html(r: Mapping[str, Any]) -> str:
    """Costs and verdict of one case, as the review page says them."""
    cost = f"list {format_usd(r.get('list_cost') or 0.0)}"
    if r.get("cassette") == "replayed":
        cost += f" · recorded for {format_usd(r.get('saved') or 0.0)} (this replay: $0)"
    else:
        cost += f" · actual {format_usd(r.get('actual_cost') or 0.0)}"
    e = economics(r)
    if e["accept_rate"] is not None:
        cost += " · per accepted image " + shown_cost_per_accepted(
            e["cost_per_accepted"], r.get("accepted")
        )
    verdict = ", ".join(labels(r))
    judged = ((r.get("judge") or {}).get("images") or [])[:4]
    judge = "; ".join(f"{j.get('score')}: {j.get('reason') or ''}" for j in judged)
    lines = [f"<b>pytest-imagegen</b>: {html.escape(verdict)}", html.escape(cost)]
    if judge:
        lines.append("judge " + html.escape(judge))
    return '<div class="imagegen">' + "<br>".join(lines) + "</div>"


def add_extras(config: Any, report: Any, r: Mapping[str, Any]) -> None:
    """Append the case's summary and one preview to ``report.extras``."""
    if not wanted(config):
        return
    try:
        from pytest_html import extras
    except ImportError:
        return
    found = list(getattr(report, "extras", None) or [])
    found.append(extras.html(summary_html(r)))
    images = (r.get("drift") or {}).get("images") or r.get("recorded_images") or []
    if images and images[0].get("path"):
        thumb = Previews(Path()).thumbnail_bytes(str(images[0]["path"]))
        if thumb is not None:
            found.append(extras.jpg(base64.b64encode(thumb).decode("ascii"), name="image 1"))
    report.extras = found
