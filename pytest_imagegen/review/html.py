"""``--imagegen-html=DIR``: a self-contained review page of a session's images.

``DIR/index.html`` has inline CSS and no script and no external asset; the
images are copied to ``DIR/images/`` and linked relatively, so the directory
can be zipped, uploaded as a CI artifact and opened anywhere. Every piece of
text from a suite (prompts, ids, params) is HTML-escaped and masked for API
keys. Failures come first; a checkbox (pure CSS) hides everything else.

Only content-addressed images are copied: a file whose name is not
``<sha256>.<ext>``, that is a symlink, or whose bytes do not hash to its
name is never read into the report (a forged baseline cannot smuggle
``/proc/self/environ`` in).
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cassettes.files import IMAGE_EXTENSIONS, SHA256_RE, atomic_write, write_text
from ..money.prices import format_usd

if TYPE_CHECKING:
    from ..api.redact import Redactor

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232a;background:#f6f7f9}
h1{font-size:20px;margin:0 0 6px}
.summary{color:#4a5562;margin:0 0 12px}
.toggle{display:inline-block;margin:0 0 16px;padding:6px 10px;background:#fff;border:1px solid #ccd3db;border-radius:6px}
#only-failures:checked ~ #cases .case:not(.failed){display:none}
.case{background:#fff;border:1px solid #d8dee6;border-left:6px solid #3c9d5d;border-radius:8px;padding:12px 16px;margin:0 0 16px}
.case.failed{border-left-color:#d23c3c}
.case.warned{border-left-color:#d9a21b}
.case h2{font-size:15px;margin:0 0 4px;font-family:ui-monospace,monospace;word-break:break-all}
.status{display:inline-block;font-weight:600;padding:1px 8px;border-radius:10px;background:#e3f4e8;color:#1f6b3a}
.failed .status{background:#fbe3e3;color:#9b1f1f}
.warned .status{background:#fbf0d5;color:#7a5a06}
.prompt{white-space:pre-wrap;background:#f3f5f8;padding:8px;border-radius:6px;margin:8px 0}
table.params{border-collapse:collapse;margin:6px 0}
table.params td{padding:2px 10px 2px 0;vertical-align:top}
table.params td:first-child{color:#4a5562}
.images{display:flex;gap:16px;flex-wrap:wrap;margin-top:8px}
.column h3{font-size:13px;margin:0 0 4px;color:#4a5562}
figure{margin:0 0 8px}
figure img{max-width:320px;max-height:320px;border:1px solid #ccd3db;display:block;background:#eee}
figcaption{font-size:12px;color:#4a5562;max-width:320px}
.over{color:#b01e1e;font-weight:600}
.none{color:#7b8794;font-style:italic}
.variants{display:flex;gap:16px;flex-wrap:wrap}
.variant{background:#fff;border:1px solid #d8dee6;border-radius:8px;padding:8px;max-width:340px}
.variant.recommended{border:3px solid #3c9d5d}
.verdict{font-weight:600}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _rank(r: Mapping[str, Any]) -> tuple[int, str]:
    drift = r.get("drift") or {}
    if r.get("outcome") == "failed":
        rank = 0
    elif drift.get("status") == "warn":
        rank = 1
    else:
        rank = 2
    return rank, str(r.get("nodeid"))


def _copy(src: str, images: Path) -> str | None:
    """Copy a content-addressed image into the report; ``None`` if it is not one."""
    source = Path(src)
    digest, _, ext = source.name.partition(".")
    if not SHA256_RE.fullmatch(digest) or ext not in IMAGE_EXTENSIONS:
        return None
    target = images / source.name
    try:
        if not target.exists():
            if source.is_symlink() or not source.is_file():
                return None
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                return None
            atomic_write(target, data)
    except OSError:
        return None
    return f"images/{_e(source.name)}"


def _figure(src: str | None, caption: str) -> str:
    img = f'<img src="{src}" alt="">' if src else '<p class="none">image not available</p>'
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"


def _case(r: Mapping[str, Any], images: Path) -> str:
    drift = r.get("drift") or {}
    status = str(drift.get("status") or "")
    failed = r.get("outcome") == "failed"
    cls = "failed" if failed else ("warned" if status == "warn" else "passed")
    label = "failed" if failed else ("drift warning" if status == "warn" else "passed")
    if status in ("fail", "missing", "accepted", "warn"):
        label += f" · drift {status}"
    request = r.get("request") or {}
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in request.items()
    )
    cassette = r.get("cassette") or "none"
    rows += (
        f"<tr><td>cost</td><td>list {_e(format_usd(r.get('list_cost') or 0.0))} · actual "
        f"{_e(format_usd(r.get('actual_cost') or 0.0))} · cassette {_e(cassette)}</td></tr>"
    )
    thresholds = drift.get("thresholds") or {}
    if thresholds:
        limits = ", ".join(f"{_e(a)} ≤ {_e(t)}" for a, t in thresholds.items())
        rows += f"<tr><td>thresholds</td><td>{limits}</td></tr>"
    baseline_figs = (
        "".join(
            _figure(_copy(p, images), f"accepted image {i}")
            for i, p in enumerate(drift.get("baseline") or [], 1)
        )
        or '<p class="none">no accepted baseline</p>'
    )
    current_figs = []
    for i, img in enumerate(drift.get("images") or [], 1):
        distances = img.get("distances") or {}
        over = set(img.get("over") or [])
        parts = [
            f'<span class="{"over" if a in over else ""}">{_e(a)} {_e(d)}</span>'
            for a, d in distances.items()
        ]
        caption = f"current image {i}" + (f": {', '.join(parts)}" if parts else "")
        read = (r.get("text") or [])[i - 1] if i <= len(r.get("text") or []) else None
        if read is not None:
            caption += f"<br>OCR read: {_e(' / '.join(read) or 'nothing')}"
        judged = ((r.get("judge") or {}).get("images") or [])[i - 1 : i]
        if judged:
            minimum = (r.get("judge") or {}).get("min_score")
            caption += (
                f"<br>judge: {_e(judged[0].get('score'))} (needs {_e(minimum)}): "
                f"{_e(judged[0].get('reason') or '')}"
            )
        current_figs.append(_figure(_copy(str(img.get("path")), images), caption))
    current = "".join(current_figs) or '<p class="none">no images (the test failed before)</p>'
    revised = "".join(
        f'<p class="prompt revised">revised by the API: {_e(p)}</p>'
        for p in r.get("revised_prompts") or []
        if p
    )
    return (
        f'<section class="case {cls}" data-status="{_e(cls)}">'
        f'<h2>{_e(r.get("nodeid"))}</h2><span class="status">{_e(label)}</span>'
        f'<p class="prompt">{_e(r.get("prompt") or "")}</p>{revised}'
        f'<table class="params">{rows}</table>'
        f'<div class="images"><div class="column baseline"><h3>baseline</h3>{baseline_figs}</div>'
        f'<div class="column current"><h3>current</h3>{current}</div></div>'
        "</section>"
    )


def _right_size(groups: Sequence[Any], images: Path) -> str:
    """The variants of each right-sizing group side by side, with cost and verdict."""
    from .rightsize import shown_cost_per_accepted

    sections = []
    for g in groups:
        cards = []
        for v in g.variants:
            verdict = v.verdict(g.recommended)
            rate = "n/a" if v.accept_rate is None else f"{v.accept_rate:.0%}"
            per = shown_cost_per_accepted(v.cost_per_accepted, v.accepted)
            cls = "variant recommended" if v.nodeid == g.recommended else "variant"
            src = _copy(v.image_path, images) if v.image_path else None
            cards.append(
                f'<div class="{cls}" data-verdict="{_e(verdict)}">'
                f"{_figure(src, _e(v.label))}"
                f"<p>list {_e(format_usd(v.list_cost))} · accepted {v.accepted}/{v.images} "
                f"({_e(rate)}) · per accepted image {_e(per)}</p>"
                f'<p class="verdict">{_e(verdict)}</p></div>'
            )
        note = f'<p class="note">{_e(g.note)}</p>' if g.note else ""
        sections.append(
            f'<section class="group"><h2>{_e(g.key)}</h2>'
            f"<p>passes at accept rate ≥ {g.min_accept_rate:.0%}</p>"
            f'<div class="variants">{"".join(cards)}</div>{note}</section>'
        )
    return (
        '<section id="right-size"><h1>Right-sizing: the cheapest setting that meets the brief</h1>'
        + "".join(sections)
        + "</section>"
    )


def write(
    directory: Path,
    results: Sequence[Mapping[str, Any]],
    redactor: Redactor | None = None,
    right_size: Sequence[Any] | None = None,
) -> Path:
    """Write ``directory/index.html`` (and copies of the images); return its path."""
    if redactor is not None:
        results = redactor.mask_data(list(results))
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=_rank)
    failed = sum(1 for r in results if r.get("outcome") == "failed")
    warned = sum(1 for r in results if (r.get("drift") or {}).get("status") == "warn")
    body = "".join(_case(r, images) for r in ordered)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-imagegen review</title><style>{CSS}</style></head><body>"
        "<h1>pytest-imagegen: visual review</h1>"
        f'<p class="summary">{len(results)} cases · {failed} failed · {warned} drift warnings</p>'
        '<input type="checkbox" id="only-failures">'
        '<label class="toggle" for="only-failures">show failures only</label>'
        f"{_right_size(right_size, images) if right_size else ''}"
        f'<main id="cases">{body}</main></body></html>\n'
    )
    index = directory / "index.html"
    write_text(index, page, redactor)
    return index
