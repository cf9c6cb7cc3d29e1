"""Running one suite case: preflight cost ceiling, request (live or cassette), checks.

Plain Python, no pytest: the pytest item only calls :func:`run_case` and
turns its exceptions into readable failures. The case's cassette is opened
once (:class:`~pytest_imagegen.cassettes.cassette.CaseCassette`) and handed to
the replay, the judge and the checks.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import CassetteError, command
from ..api.shape import request_params
from ..cassettes.cassette import CaseCassette, CassetteState
from ..cassettes.files import shown
from ..cassettes.paths import suite_cassette_path, suite_images_dir
from ..cassettes.remote import image_store
from ..checks.expectations import assess
from ..money.context import RunContext
from ..money.pipeline import actual_ceiling_error, list_ceiling_error, paid_request, price_response
from ..money.prices import format_usd
from ..review.results import CaseResult
from . import costing
from .spec import CaseSpec

if TYPE_CHECKING:
    from ..api.client import Generation, ImagesClient


def new_result(spec: CaseSpec, nodeid: str) -> CaseResult:
    body = spec.request_body()
    return CaseResult(
        nodeid=nodeid,
        suite=spec.suite,
        category=spec.category,
        model=spec.model,
        size=spec.size,
        quality=spec.quality,
        n=spec.n,
        prompt=spec.prompt,
        request=request_params(body),
        min_accept_rate=spec.expect.min_accept_rate,
        group=nodeid.split("[", 1)[0] if spec.right_size_group else None,
        variant="-".join(f"{k}={v}" for k, v in spec.matrix) if spec.right_size_group else None,
        excluded=spec.excluded,
    )


def preflight(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> None:
    """Price the case and refuse it before any request if it is over its ceiling."""
    result.list_cost = costing.list_cost(ctx, spec)
    result.max_cost = costing.ceiling(ctx, spec)
    if result.max_cost is not None and result.list_cost > result.max_cost:
        result.ceiling = "list"
        raise list_ceiling_error(result.list_cost, result.max_cost, costing.describe(spec))


def fix_hint(nodeid: str) -> str:
    return f"re-record it with {command('--imagegen-record-mode=all', nodeid)}"


def open_cassette(spec: CaseSpec, nodeid: str) -> CaseCassette:
    """The case's cassette (read lazily, at most once)."""
    return CaseCassette(suite_cassette_path(spec.path, spec.id), fix_hint(nodeid))


def obtain(
    spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette
) -> Generation:
    """The case's images: replayed from its cassette, or recorded, per the record mode."""
    mode = ctx.settings.record_mode
    body = spec.request_body()
    prefetch_error = prefetch_failed(ctx.session_dir, result.nodeid)
    if prefetch_error is not None:  # its request was sent (or refused) already
        raise CassetteError(prefetch_error)
    state = cassette.state(body)
    cost = format_usd(result.list_cost or 0.0)
    if state.status == "fresh" and (mode != "all" or cassette.recorded_by(ctx.session_id)):
        return replay(spec, ctx, result, cassette)
    if state.status == "missing" and mode == "none":
        result.cassette = "missing"
        raise CassetteError(
            f"no cassette for {result.nodeid}; record it with "
            f"{command('--imagegen-record-mode=once', result.nodeid)} (estimated cost {cost})"
        )
    if state.status == "stale" and mode in ("none", "once"):
        result.cassette = "stale"
        changed = "\n".join(f"    {line}" for line in _named_changes(spec, state))
        raise CassetteError(
            f"stale cassette for {result.nodeid}: the case changed since {cassette.path.name} "
            f"was recorded:\n{changed}\n"
            f"  re-record it with {command('--imagegen-record-mode=new_episodes', result.nodeid)} "
            f"(estimated cost {cost})"
        )
    from ..api.locks import file_lock

    # one recording per cassette in the session: a concurrent prefetch (or another
    # xdist worker) may be recording it right now
    with file_lock(cassette.path, timeout=ctx.settings.timeout * (ctx.settings.max_retries + 2)):
        if cassette.reload().recorded_by(ctx.session_id):
            return replay(spec, ctx, result, cassette)
        generation = record(spec, ctx, result, cassette.path, cassette.fix)
        cassette.reload()
        return generation


def prefetch_error_path(session_dir: Path, nodeid: str) -> Path:
    return session_dir / f"prefetch-{hashlib.sha256(nodeid.encode()).hexdigest()[:24]}.txt"


def prefetch_failed(session_dir: Path | None, nodeid: str) -> str | None:
    """The error a concurrent prefetch of ``nodeid`` ended with (any process of the session)."""
    if session_dir is None:
        return None
    try:
        return prefetch_error_path(session_dir, nodeid).read_text(encoding="utf-8")
    except OSError:
        return None


def _replayed(ctx: RunContext, result: CaseResult, meta: Mapping[str, Any]) -> None:
    """Set what a replay saved; a cassette this session recorded (the prefetch, another
    worker) is reported as recorded, with what it cost."""
    if ctx.session_id and meta.get("session") == ctx.session_id:
        result.cassette, result.saved = "recorded", 0.0
        result.actual_cost = float(meta.get("actual_cost") or 0.0)
        return
    result.cassette = "replayed"
    result.saved = float(meta.get("actual_cost") or result.list_cost or 0.0)


def _named_changes(spec: CaseSpec, state: CassetteState) -> list[str]:
    """The stale fields, an edit's input files named instead of their sha256."""
    if not spec.is_edit:
        return list(state.changes)
    old = state.meta.get("request") or {}
    old = old if isinstance(old, dict) else {}
    listed = old.get("image[]")
    old_images: list[Any] = listed if isinstance(listed, list) else []
    lines = [c for c in state.changes if not c.startswith(("image[]:", "mask:"))]
    for index, f in enumerate(spec.inputs):
        if index >= len(old_images) or old_images[index] != f.sha256:
            lines.append(f"image {f.shown!r} changed since the cassette was recorded")
    if spec.mask is not None and old.get("mask") != spec.mask.sha256:
        lines.append(f"mask {spec.mask.shown!r} changed since the cassette was recorded")
    return lines or list(state.changes)


def replay(
    spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette
) -> Generation:
    from ..cassettes.format import damaged, why
    from ..cassettes.persister import Persister
    from ..cassettes.persister import open_cassette as vcr_cassette

    store = image_store(ctx, suite_images_dir(spec.path))
    fast = cassette.generation(spec.request_body(), store)
    if fast is not None:
        generation, meta = fast
        _replayed(ctx, result, meta)
        return generation
    path, fix = cassette.path, cassette.fix
    persister = Persister(store, [], fix=fix)
    try:
        with vcr_cassette(path, persister, record=False):
            generation = send(ctx.replay_client(), spec, spec.request_body())
    except CassetteError:
        raise
    except Exception as exc:
        if type(exc).__name__ != "CannotOverwriteExistingCassetteException":
            raise damaged(path, f"replay failed ({why(exc)})", fix) from None
        raise CassetteError(
            f"cassette {shown(path)} has no response for this request, and replay never sends "
            f"requests; {fix}"
        ) from None
    _replayed(ctx, result, persister.loaded_meta)
    return generation


def record(
    spec: CaseSpec,
    ctx: RunContext,
    result: CaseResult,
    path: Path,
    fix: str,
    *,
    direct: bool = False,
) -> Generation:
    """Send the case's request and write its cassette.

    ``direct`` (the concurrent prefetch): no vcrpy, whose patches are process-wide and
    would mix up the cassettes of concurrent threads; the client keeps the responses and
    the cassette is written from them, in the same format.
    """
    from ..cassettes.format import new_meta
    from ..cassettes.persister import Persister, save_responses
    from ..cassettes.persister import open_cassette as vcr_cassette

    client = ctx.client(private=direct)  # raises before anything is sent when no key is set
    body = spec.request_body()
    persister = Persister(
        image_store(ctx, suite_images_dir(spec.path)), ctx.redactor, fix=fix, fresh=True
    )
    persister.request_body = body
    list_cost = costing.image_list_cost(ctx, spec)
    with (
        paid_request(
            ctx,
            nodeid=result.nodeid,
            suite=spec.suite,
            category=spec.category,
            body=body,
            list_cost=list_cost,
            ledger_root=ctx.suites_root(spec.path),
        ) as charge,
        contextlib.nullcontext() if direct else vcr_cassette(path, persister, record=True),
    ):
        if direct:
            client.exchanges = []
        generation = send(client, spec, body)
        result.attempts = charge.attempts = generation.attempts
        actual = price_response(
            ctx, spec.model, generation.usage, list_cost, result.nodeid, result.notes
        )
        result.cassette, result.actual_cost = "live", actual  # paid, even if saving fails
        charge.actual = actual
        persister.meta = new_meta(
            nodeid=result.nodeid,
            session=ctx.session_id,
            request=body,
            list_cost=result.list_cost,
            actual_cost=actual,
            usage=generation.usage,
        )
        if direct:
            save_responses(path, persister, client.exchanges or [])
    if direct:
        client.close()
    result.cassette = "recorded" if persister.saved else "live"
    persister.images.flush()  # to the image store, if any: after vcrpy let go of HTTP
    return generation


def send(client: ImagesClient, spec: CaseSpec, body: Mapping[str, Any]) -> Generation:
    """The case's request: a generation, or an edit of its input images (multipart)."""
    if not spec.is_edit:
        return client.generate(body)
    from ..api.multipart import fields
    from .inputs import InputFile

    def part(f: InputFile) -> tuple[str, bytes, str]:
        return (f.path.name, f.read(), f.content_type)

    return client.edit(
        fields({k: v for k, v in body.items() if k not in ("image[]", "mask")}),
        [part(f) for f in spec.inputs],
        part(spec.mask) if spec.mask else None,
    )


def settle(spec: CaseSpec, ctx: RunContext, result: CaseResult, generation: Generation) -> None:
    """Actual cost of a live call and the after-the-fact ceiling check."""
    result.actual_cost = ctx.prices.actual_cost(
        spec.model, generation.usage, costing.image_list_cost(ctx, spec)
    )  # noted when recorded (price_response)
    if result.max_cost is not None and result.actual_cost > result.max_cost:
        result.ceiling = "actual"
        raise actual_ceiling_error(result.actual_cost, result.max_cost, result.list_cost)


def run_case(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    """Preflight, obtain the images, settle the cost and check expectations."""
    preflight(spec, ctx, result)
    cassette = open_cassette(spec, result.nodeid)
    generation = obtain(spec, ctx, result, cassette)
    if result.cassette != "replayed":
        settle(spec, ctx, result, generation)
    images = [image.data for image in generation.images]
    result.revised_prompts = generation.revised_prompts
    verdicts = None
    if spec.expect.judge is not None:
        from .judging import judge_case

        verdicts = judge_case(spec, ctx, result, generation, cassette)
        if result.max_cost is not None and result.actual_cost > result.max_cost:
            result.ceiling = "actual"
            raise actual_ceiling_error(result.actual_cost, result.max_cost, result.list_cost)
    assessment = assess(
        spec.expect,
        images,
        fix=fix_hint(result.nodeid),
        shas=[image.sha256 for image in generation.images],
        images_dir=suite_images_dir(spec.path),
        redactor=ctx.redactor,
        verdicts=verdicts,
        min_score=(result.judge or {}).get("min_score"),
    )
    result.accepted, result.text = assessment.accepted, assessment.text
    result.images = len(images)
    if assessment.quality:
        result.quality_check = "fail"
    assessment.raise_for()
    check_drift(spec, ctx, result, images, [image.sha256 for image in generation.images])
    return generation


def check_drift(
    spec: CaseSpec,
    ctx: RunContext,
    result: CaseResult,
    images: list[bytes],
    shas: list[str | None] | None = None,
) -> None:
    """Compare with the suite's baseline; accept when just recorded or when asked to."""
    from ..checks import drift, perceptual

    s = ctx.settings
    outcome = drift.check(
        nodeid=result.nodeid,
        key=spec.id,
        images=images,
        shas=shas,
        prompt=spec.prompt,
        baseline_file=perceptual.baseline_path(spec.path),
        images_dir=suite_images_dir(spec.path),
        store=image_store(ctx, suite_images_dir(spec.path)),
        thresholds=drift.thresholds_for(spec.expect.drift, s.drift_thresholds),
        mode=s.drift_mode,
        update=s.update_baselines,
        # a missing baseline is accepted while recording (not only for the cases recorded
        # now: an interrupted recording run still gets its baselines on the next run)
        recorded=result.cassette in ("recorded", "live") or s.record_mode != "none",
        cache=ctx.baselines,
        html_dir=s.html_dir,
    )
    result.apply_drift(outcome)
    drift.raise_for(outcome)
