"""The session's review page, ``--imagegen-approve`` and ``--imagegen-review`` (SPEC §17).

Called by the pytest glue (``session.py``) with its :class:`ImagegenState`; the page is
rendered by :mod:`..review.html`, approvals are applied by :mod:`.approving`, the
server is :mod:`..review.server`. Everything here runs on the xdist controller (or the
only process): the results of every worker are there, and baselines are written once.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..api.errors import ImagegenError
from ..cassettes.paths import suite_images_dir
from ..checks import perceptual
from ..checks.approvals import Target
from ..review import html
from ..review.html import PageContext
from . import approving


def page_context(state: Any, decided: Mapping[str, str] | None = None) -> PageContext:
    """What the top of the page says: cases by state, spend, budget, the cost gate."""
    budget = state.ctx.budget
    return PageContext(
        budget=budget.snapshot() if budget is not None and state.owns_budget else None,
        cost_diff=state.cost_diff,
        cost_limit=state.options.cost_limit,
        right_size=state.right_size_groups(),
        decided=dict(decided or {}),
    )


def write_page(state: Any, directory: Path) -> Path:
    return html.write(directory, state.results, state.ctx.redactor, page=page_context(state))


def stamp_approvals(state: Any) -> None:
    """``--imagegen-update-baselines``: record who accepted, when, at what cost per image."""
    if state.settings.update_baselines:
        approving.stamp_updates(state.results, state.config.rootpath)


def approve(state: Any, session: Any, cases: list[tuple[str, Any]]) -> bool:
    """``--imagegen-approve=FILE``: apply it to the collected cases; run no test."""
    option = str(state.config.getoption("imagegen_approve"))
    path = (state.config.invocation_params.dir / option).resolve()
    tr = state.config.pluginmanager.get_plugin("terminalreporter")
    try:
        lines = approving.apply_file(
            path,
            option,
            approving.targets(cases, state.settings),
            state.ctx.redactor,
            state.config.rootpath,
            fetch=lambda folder, sha: _from_store(state.ctx, folder, sha),
        )
        red = False
    except ImagegenError as exc:
        lines, red = [state.ctx.redactor.mask(str(exc))], True
        session.testsfailed = 1
    if tr is not None:
        tr.write_sep("-", "imagegen approve", red=red)
        for line in lines:
            tr.write_line(line, red=red)
    return True


def result_targets(results: list[dict[str, Any]]) -> dict[str, Target]:
    """Where each case of the run keeps its baseline (the xdist controller collects no
    test: its cases are known from their results, which its own workers sent)."""
    out = {}
    for r in results:
        if not r.get("suite_file") or not r.get("case_id"):
            continue
        suite = Path(str(r["suite_file"]))
        thresholds = (r.get("drift") or {}).get("thresholds") or {}
        out[str(r["nodeid"])] = Target(
            nodeid=str(r["nodeid"]),
            key=str(r["case_id"]),
            prompt=str(r.get("prompt") or ""),
            baseline_file=perceptual.baseline_path(suite),
            images_dir=suite_images_dir(suite),
            suite_dir=suite.parent,
            algorithms=tuple(perceptual.hash_algorithms(thresholds)),
        )
    return out


def serve(state: Any) -> None:
    """``--imagegen-review``: serve the page until Ctrl-C (on the controller, after the run)."""
    from ..review.previews import Previews
    from ..review.server import ReviewServer

    directory = state.settings.html_dir
    results = state.results
    if directory is None or not results or state.is_worker:
        return
    if not (directory / "index.html").is_file():  # the run stopped before the page
        write_page(state, directory)
    masked = state.ctx.redactor.mask_data(list(results))
    by_id = {str(r.get("nodeid")): r for r in results}
    found = result_targets(results)
    roots = [*state.settings.suite_dirs, *{t.suite_dir for t in found.values()}]
    cwd = state.config.rootpath

    def render(links: Any, decided: Mapping[str, str]) -> str:
        text = html.render(masked, Previews(directory), links, page_context(state, decided))
        return str(state.ctx.redactor.mask(text))

    def decide(body: Mapping[str, Any]) -> str:
        return approving.decide(
            body.get("nodeid"),
            body.get("action"),
            body.get("images"),
            found,
            by_id,
            state.ctx.redactor,
            cwd,
        )

    server = ReviewServer(directory, roots, render, decide)
    tr = state.config.pluginmanager.get_plugin("terminalreporter")
    capman = state.config.pluginmanager.get_plugin("capturemanager")
    hold = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()

    def say(line: str) -> None:
        if tr is not None:
            tr.write_line(line)
            tr._tw.flush()
        else:
            print(line, flush=True)

    with hold:
        server.serve_until_interrupted(say)
    if state.config.getoption("imagegen_html") is None:  # the default page folder
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()  # .imagegen, when nothing else is in it


def _from_store(ctx: Any, folder: Path, sha: str) -> None:
    """An approved image kept only in the image store (imagegen_image_store): into the
    local folder, verified, so the baseline can be written from it."""
    from ..cassettes.files import IMAGE_EXTENSIONS
    from ..cassettes.remote import RemoteImageStore, image_store

    store = image_store(ctx, folder)
    if not isinstance(store, RemoteImageStore):
        return
    for ext in IMAGE_EXTENSIONS:
        try:
            data = store.load(sha, ext)
        except ImagegenError:
            continue
        store.put(data)  # the local sidecar (and nothing to upload: the store has it)
        return
