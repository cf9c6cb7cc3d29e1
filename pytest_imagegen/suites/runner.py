"""Running one suite case: preflight cost ceiling, request (live or cassette), checks.

Plain Python, no pytest: the pytest item only calls :func:`run_case` and
turns its exceptions into readable failures. The case's cassette is opened
once (:class:`~pytest_imagegen.cassettes.cassette.CaseCassette`) and handed to
the replay, the judge and the checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import CassetteError, ImagegenError, command
from ..api.shape import request_params
from ..cassettes.cassette import CaseCassette, CassetteState
from ..cassettes.files import shown, stamp
from ..cassettes.paths import suite_cassette_path, suite_images_dir
from ..cassettes.remote import image_store
from ..checks.drift import DriftCheck
from ..checks.drift import raise_for as drift_raise_for
from ..checks.expectations import assess
from ..money.context import RunContext
from ..money.pipeline import (
    PaidCall,
    actual_ceiling_error,
    list_ceiling_error,
    overbilled_note,
    paid_call,
)
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
        case_id=spec.id,
        suite_file=str(spec.path),
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
        message, result.actual_cost, result.attempts = prefetch_error
        if result.actual_cost:
            result.cassette = "live"
        raise CassetteError(message)
    state = cassette.state(body)
    cost = format_usd(result.list_cost or 0.0)
    if state.status == "fresh" and (mode != "all" or cassette.recorded_by(ctx.session_id)):
        return replay(spec, ctx, result, cassette)
    if state.status == "missing" and mode == "none":
        result.cassette = "missing"
        result.rerecord_command = command("--imagegen-record-mode=once", result.nodeid)
        result.rerecord_cost = result.list_cost  # review page (SPEC §17)
        raise CassetteError(
            f"no cassette for {result.nodeid}; record it with "
            f"{command('--imagegen-record-mode=once', result.nodeid)} (estimated cost {cost})"
        )
    if state.status == "stale" and mode in ("none", "once"):
        result.cassette = "stale"
        result.stale_changes = _named_changes(spec, state)  # review page (SPEC §17)
        result.rerecord_command = command("--imagegen-record-mode=new_episodes", result.nodeid)
        result.rerecord_cost = result.list_cost
        changed = "\n".join(f"    {line}" for line in result.stale_changes)
        raise CassetteError(
            f"stale cassette for {result.nodeid}: the case changed since {cassette.path.name} "
            f"was recorded:\n{changed}\n"
            f"  re-record it with {command('--imagegen-record-mode=new_episodes', result.nodeid)} "
            f"(estimated cost {cost})"
        )
    return record_once(spec, ctx, result, cassette)


def record_once(
    spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette
) -> Generation:
    """Record the case unless someone else did meanwhile: one recording per cassette, across
    the threads of the prefetch, xdist workers and other pytest processes of the project
    (the one that waited for the lock uses what the other recorded, SPEC §12)."""
    from ..api.locks import file_lock

    before = stamp(cassette.path)
    lock_root = ctx.state_dir or cassette.path.parent
    with file_lock(
        cassette.path, lock_root, timeout=ctx.settings.timeout * (ctx.settings.max_retries + 2)
    ):
        cassette.reload()
        body = spec.request_body()
        fresh = cassette.state(body).status == "fresh"
        mode = ctx.settings.record_mode
        if fresh and (
            mode != "all" or cassette.recorded_by(ctx.session_id) or stamp(cassette.path) != before
        ):
            return replay(spec, ctx, result, cassette)
        if _promote_pending(spec, ctx, cassette, body):
            return replay(spec, ctx, result, cassette)
        generation = record(spec, ctx, result, cassette)
        cassette.reload()
        return generation


def _promote_pending(
    spec: CaseSpec, ctx: RunContext, cassette: CaseCassette, body: Mapping[str, Any]
) -> bool:
    """A paid answer kept by an earlier run (its cassette could not be written): write the
    cassette from it now, so nothing is paid twice."""
    from ..cassettes.format import fingerprint
    from ..cassettes.pending import find_pending
    from ..cassettes.persister import Persister, promote

    pending_dir = ctx.state_dir / "pending" if ctx.state_dir else None
    kept = find_pending(pending_dir, cassette.path, fingerprint(body))
    if kept is None:
        return False
    persister = Persister(
        image_store(ctx, suite_images_dir(spec.path)), ctx.redactor, fix=cassette.fix, fresh=True
    )
    persister.request_body = body
    promote(kept, cassette.path, persister)
    cassette.reload()
    persister.images.flush()  # to the image store, if any
    return True


def prefetch_error_path(session_dir: Path, nodeid: str) -> Path:
    return session_dir / f"prefetch-{hashlib.sha256(nodeid.encode()).hexdigest()[:24]}.txt"


def prefetch_failed(session_dir: Path | None, nodeid: str) -> tuple[str, float, int] | None:
    """The error a concurrent prefetch of ``nodeid`` ended with (any process of the session),
    with what it booked and its attempts."""
    if session_dir is None:
        return None
    try:
        text = prefetch_error_path(session_dir, nodeid).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = json.loads(text)
        return str(data["message"]), float(data["actual_cost"]), int(data["attempts"])
    except (ValueError, KeyError, TypeError):
        return text, 0.0, 0


def _replayed(ctx: RunContext, result: CaseResult, meta: Mapping[str, Any]) -> None:
    """Set what a replay saved; a cassette this session recorded (the prefetch, another
    worker) is reported as recorded, with what it cost."""
    if ctx.session_id and meta.get("session") == ctx.session_id:
        result.cassette, result.saved = "recorded", 0.0
        result.actual_cost = float(meta.get("actual_cost") or 0.0)
        notes = meta.get("notes")
        result.notes += (
            [str(n) for n in notes if isinstance(n, str)] if isinstance(notes, list) else []
        )
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
    spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette
) -> Generation:
    """Send the case's request through the paid-call pipeline and write its cassette from
    the exchanges the client read (no vcrpy: the same path serial and concurrent)."""
    from ..cassettes.format import new_meta
    from ..cassettes.persister import Persister, save_exchanges

    client = ctx.client()  # raises before anything is sent when no key is set
    body = spec.request_body()
    list_cost = costing.image_list_cost(ctx, spec)
    key = f"{spec.model} {spec.size} quality={spec.quality or 'auto'}"
    call: PaidCall | None = None
    try:
        with paid_call(
            ctx,
            nodeid=result.nodeid,
            suite=spec.suite,
            category=spec.category,
            body=body,
            list_cost=list_cost,
            ledger_root=ctx.suites_root(spec.path),
            price_key=key,
        ) as call:
            generation = send(client, spec, body, call)
            priced = ctx.prices.price_usage(spec.model, generation.usage, list_cost)
            if priced.problem:
                result.notes.append(
                    f"{result.nodeid}: the response's usage cannot be priced ({priced.problem}); "
                    f"booked at list cost {format_usd(priced.cost)}"
                )
            call.close(priced.cost, "ok", calibrate=priced.basis != "list")
    finally:
        if call is not None:
            result.actual_cost, result.attempts = call.booked, max(call.attempts, 1)
            result.server = "fake" if ctx.settings.fake_server else "live"
    result.cassette = "live"  # paid, even if saving fails
    note = overbilled_note(key, spec.model, spec.size, spec.quality, spec.n, list_cost, call.booked)
    if note:
        result.notes.append(note)
    persister = Persister(
        image_store(ctx, suite_images_dir(spec.path)),
        ctx.redactor,
        fix=cassette.fix,
        fresh=True,
        pending_dir=ctx.state_dir / "pending" if ctx.state_dir else None,
    )
    persister.request_body = body
    persister.meta = new_meta(
        nodeid=result.nodeid,
        session=ctx.session_id,
        request=body,
        list_cost=result.list_cost,
        actual_cost=call.booked,
        usage=generation.usage,
        notes=list(result.notes),  # said again when this session replays it (the prefetch)
    )
    save_exchanges(cassette.path, persister, generation.exchanges)
    result.cassette = "recorded"
    persister.images.flush()  # to the image store, if any (UploadFailed: kept locally)
    return generation


def send(
    client: ImagesClient, spec: CaseSpec, body: Mapping[str, Any], hooks: PaidCall | None = None
) -> Generation:
    """The case's request: a generation, or an edit of its input images (multipart)."""
    if not spec.is_edit:
        return client.generate(body, hooks=hooks, provider=spec.provider)
    from ..api.multipart import fields
    from .inputs import InputFile

    def part(f: InputFile) -> tuple[str, bytes, str]:
        return (f.path.name, f.read(), f.content_type)

    from ..cassettes.format import canonical_json

    return client.edit(
        fields({k: v for k, v in body.items() if k not in ("image[]", "mask")}),
        [part(f) for f in spec.inputs],
        part(spec.mask) if spec.mask else None,
        hooks=hooks,
        record_body=canonical_json(body),
        provider=spec.provider,
    )


def settle(spec: CaseSpec, ctx: RunContext, result: CaseResult, generation: Generation) -> None:
    """The after-the-fact ceiling check on what the call booked."""
    if result.max_cost is not None and result.actual_cost > result.max_cost:
        result.ceiling = "actual"
        raise actual_ceiling_error(result.actual_cost, result.max_cost, result.list_cost)


def run_case(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    """Preflight, obtain the images, settle the cost and run every check (a failing quality
    check does not hide a drift: all failures of the case are reported together)."""
    from . import reviewdata

    cassette = open_cassette(spec, result.nodeid)
    try:
        return _run_case(spec, ctx, result, cassette)
    except ImagegenError as exc:
        result.failure = ctx.redactor.mask(str(exc))
        result.failed_checks = reviewdata.failed_checks(exc, result)
        raise
    finally:  # what the review page shows, whatever the state (SPEC §17)
        reviewdata.complete(spec, ctx, result, cassette)


def _run_case(
    spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette
) -> Generation:
    preflight(spec, ctx, result)
    generation = obtain(spec, ctx, result, cassette)
    if result.cassette != "replayed":
        settle(spec, ctx, result, generation)
    images = [image.data for image in generation.images]
    shas = [image.sha256 for image in generation.images]
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
        shas=shas,
        images_dir=suite_images_dir(spec.path),
        redactor=ctx.redactor,
        verdicts=verdicts,
        min_score=(result.judge or {}).get("min_score"),
    )
    result.accepted, result.text = assessment.accepted, assessment.text
    result.images = len(images)
    if assessment.quality:
        result.quality_check = "fail"
    checked = not (assessment.problems or assessment.quality)
    outcome = check_drift(spec, ctx, result, images, shas, auto_accept=checked)
    if not checked:
        drifted = outcome.message if outcome.status in ("fail", "missing") else None
        assessment.raise_for(also=drifted)
    drift_raise_for(outcome)
    return generation


def check_drift(
    spec: CaseSpec,
    ctx: RunContext,
    result: CaseResult,
    images: list[bytes],
    shas: list[str | None] | None = None,
    *,
    auto_accept: bool = True,
) -> DriftCheck:
    """Compare with the suite's baseline; accept when just recorded (``auto_accept``: the
    images passed every quality check) or when asked to. The caller raises the outcome."""
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
        recorded=auto_accept
        and (result.cassette in ("recorded", "live") or s.record_mode != "none"),
        cache=ctx.baselines,
        html_dir=s.html_dir,
    )
    result.apply_drift(outcome)
    return outcome
