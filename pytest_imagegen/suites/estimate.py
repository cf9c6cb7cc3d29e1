"""``--imagegen-estimate`` for suite cases: each case's list cost and cassette status.

One line of each cassette is read (its request fingerprint); a fresh cassette of
a judged case is opened to compare the recorded judge. Rendering is
:mod:`pytest_imagegen.review.estimate`'s.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api.errors import ImagegenError
from ..cassettes.cassette import CaseCassette
from ..cassettes.format import fingerprint, read_fingerprint
from ..cassettes.paths import suite_cassette_path
from ..money.context import RunContext
from ..review.estimate import Estimate, EstimateRow
from . import costing
from .judging import config_for
from .spec import CaseSpec


def estimate(cases: Iterable[tuple[str, CaseSpec]], ctx: RunContext) -> Estimate:
    out = Estimate()
    for nodeid, spec in cases:
        cost = costing.list_cost(ctx, spec)
        recorded = read_fingerprint(suite_cassette_path(spec.path, spec.id))
        if recorded is None:
            status = "missing"
        elif recorded == fingerprint(spec.request_body()):
            status = "fresh"
        else:
            status = "stale"
        ceiling = costing.ceiling(ctx, spec)
        over = ceiling if ceiling is not None and cost > ceiling else None
        row = EstimateRow(
            nodeid,
            f"{spec.model} {spec.size} {spec.quality or 'auto'} n={spec.n}",
            cost,
            status,
            over,
            group=nodeid.split("[", 1)[0] if spec.right_size_group else None,
            variant="-".join(f"{k}={v}" for k, v in spec.matrix),
            excluded=spec.excluded,
        )
        if status == "fresh" and spec.expect.judge is not None and _judge_stale(spec, ctx):
            row.cassette, row.record_cost = "judge stale", costing.judge_list_cost(ctx, spec)
        out.rows.append(row)
    return out


def _judge_stale(spec: CaseSpec, ctx: RunContext) -> bool:
    """A fresh cassette whose recorded judge used another model or rubric (or none)."""
    cfg = config_for(spec, ctx)
    try:
        cassette = CaseCassette(suite_cassette_path(spec.path, spec.id), "")
        judged = cassette.meta.get("judge")
    except ImagegenError:
        return True  # damaged: its test says so; recording it again would judge too
    if not isinstance(judged, dict) or cfg is None:
        return True
    return judged.get("model") != cfg.model or judged.get("rubric") != cfg.rubric
