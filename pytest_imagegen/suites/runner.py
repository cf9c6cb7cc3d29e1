"""Running one suite case: preflight cost ceiling, request (live or cassette), checks.

Plain Python, no pytest: the pytest item only calls :func:`run_case` and
turns its exceptions into readable failures.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .costs import PriceTable, format_usd
from .errors import CassetteError, CostCeilingError, command
from .expectations import assess
from .files import shown
from .redact import APIKey, Redactor, key_digest
from .settings import KEY_ENV_VARS, Settings, find_api_key
from .spend import paid_request
from .suite import CaseSpec, request_params

if TYPE_CHECKING:
    from .budget import SessionBudget
    from .client import Generation, ImagesClient
    from .drift import DriftCheck
    from .limiter import SharedLimiter


@dataclass
class CaseResult:
    """Everything the reports need about one case run (JSON-serialisable)."""

    nodeid: str
    suite: str
    category: str | None
    model: str
    size: str
    quality: str | None
    n: int
    list_cost: float | None = None
    actual_cost: float = 0.0  # money spent by this run (0 for a replay)
    max_cost: float | None = None
    cassette: str = "none"  # live | replayed | recorded | missing | stale | none
    ceiling: str | None = None  # "list" or "actual" when the ceiling failed the test
    saved: float = 0.0  # for a replay: what the recording cost, i.e. what replay saved
    attempts: int = 0
    outcome: str = "unknown"
    drift: dict[str, Any] | None = None  # status, thresholds, per-image distances
    prompt: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # the body without the prompt
    baseline_updates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warning: str | None = None
    revised_prompts: list[str | None] = field(default_factory=list)  # per image, from the API
    text: list[list[str]] | None = None  # per image: what OCR read (cases with expect.text)
    accepted: int | None = None  # images that passed every quality check
    quality_check: str | None = None  # "fail" when expect.text (or the judge) failed the test
    judge: dict[str, Any] | None = None  # model, rubric, min_score, per image score and reason
    judge_cost: float = 0.0  # what judging cost in this run (0 on replay)
    images: int | None = None  # images that came back
    group: str | None = None  # right-sizing group (a matrix over size/quality/n/model)
    variant: str | None = None  # this case's cell of that matrix, e.g. "quality=low-size=…"
    min_accept_rate: float = 1.0
    excluded: str | None = None  # the use-case limit that rules this variant out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(repr=False)
class RunContext:
    """Per-session state shared by all cases of one process.

    Its ``repr`` names no key and no environment variable: a context (or an
    object holding one, like the ``imagegen`` fixture) may appear in a
    traceback printed with ``-l``. Clients are cached by a hash of their key.
    """

    settings: Settings
    prices: PriceTable
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    budget: SessionBudget | None = None
    limiter: SharedLimiter | None = None  # imagegen_max_inflight / imagegen_rate_limit
    session_id: str = ""  # one per test session (shared by its xdist workers)
    session_dir: Path | None = None  # the session's shared scratch folder
    baselines: dict[Path, Any] = field(default_factory=dict)  # loaded baseline files
    _clients: dict[str, ImagesClient] = field(default_factory=dict)
    _redactor: Redactor = field(default_factory=Redactor)

    def __repr__(self) -> str:
        s = self.settings
        return f"RunContext(base_url={s.base_url!r}, record_mode={s.record_mode!r})"

    def client(self, key: str | APIKey | None = None, *, private: bool = False) -> ImagesClient:
        """The images client for ``key``, by default the environment's (raises if none);
        ``private``: a new one for the caller alone (close it after use)."""
        from .client import ImagesClient

        if key is None:
            _, found = find_api_key(self.environ)
            key = APIKey(found)
        if not isinstance(key, APIKey):
            key = APIKey(key)
        if private or key.digest not in self._clients:
            s = self.settings
            made = ImagesClient(
                s.base_url,
                key,
                timeout=s.timeout,
                max_retries=s.max_retries,
                backoff=s.backoff,
                redactor=self.redactor,
                limiter=self.limiter,
            )
            if private:
                return made
            self._clients[key.digest] = made
        return self._clients[key.digest]

    def replay_client(self) -> ImagesClient:
        """A client for replays: no key, no retries (nothing reaches the network)."""
        from .client import ImagesClient

        name = key_digest("")
        if name not in self._clients:
            self._clients[name] = ImagesClient(
                self.settings.base_url, "imagegen-replay", max_retries=0, redactor=self.redactor
            )
        return self._clients[name]

    @property
    def redactor(self) -> Redactor:
        """Masks every API key of the environment (and any a test's client sent)."""
        self._redactor.add(*(self.environ.get(name) for name in KEY_ENV_VARS))
        return self._redactor

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def suites_root(self, path: Path) -> Path:
        """The suites directory a file belongs to (ledger and profiles live there)."""
        return suites_root(path, self.settings.suite_dirs, self.settings.project_root)

    def ceiling(self, spec: CaseSpec) -> float | None:
        return spec.max_cost if spec.max_cost is not None else self.settings.default_max_cost

    def image_list_cost(self, spec: CaseSpec) -> float:
        """The images request: generated images and prompt, and an edit's input images."""
        cost = self.prices.list_cost(spec.model, spec.size, spec.quality, spec.n, spec.prompt).total
        if spec.is_edit:
            files = [*spec.inputs, *([spec.mask] if spec.mask else [])]
            cost += self.prices.input_images_cost(spec.model, [(f.width, f.height) for f in files])
        return round(cost, 6)

    def judge_list_cost(self, spec: CaseSpec) -> float:
        """What judging every image of the case may cost (``expect.judge``), estimated high."""
        from .judging import config_for

        cfg = config_for(spec, self)
        return round(cfg.list_cost_per_image(self) * spec.n, 6) if cfg else 0.0

    def list_cost(self, spec: CaseSpec) -> float:
        """The case's preflight figure: the images and, with ``expect.judge``, the judge."""
        return round(self.image_list_cost(spec) + self.judge_list_cost(spec), 6)


def suites_root(path: Path, suite_dirs: tuple[Path, ...], project: Path | None = None) -> Path:
    """The suite directory holding ``path``; else the first one that exists (tests' own
    code shares its ledger); else the project directory, so no empty suite directory is
    created just to hold a ledger."""
    resolved = path.resolve()
    for d in suite_dirs:
        if d in resolved.parents:
            return d
    for d in suite_dirs:
        if d.is_dir():
            return d
    return project or (suite_dirs[0].parent if suite_dirs else resolved.parent)


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
    result.list_cost = ctx.list_cost(spec)
    result.max_cost = ctx.ceiling(spec)
    if result.max_cost is not None and result.list_cost > result.max_cost:
        result.ceiling = "list"
        raise list_ceiling_error(result.list_cost, result.max_cost, describe(spec))


CEILING_FIX = "  what to do: lower n, size or quality, or raise max_cost for this case"


def list_ceiling_error(
    cost: float, max_cost: float, request: str, fix: str = CEILING_FIX
) -> CostCeilingError:
    return CostCeilingError(
        f"list cost {format_usd(cost)} is above max_cost {format_usd(max_cost)} "
        f"({request}); no request was sent.\n{fix}"
    )


def actual_ceiling_error(
    actual: float, max_cost: float, list_cost: float | None, fix: str = CEILING_FIX
) -> CostCeilingError:
    surprise = ""
    if list_cost is not None and actual > list_cost:
        surprise = (
            f"\n  the API billed more than the list cost {format_usd(list_cost)}: "
            "check the price table (ini imagegen_prices) against your provider's prices"
        )
    return CostCeilingError(
        f"actual cost {format_usd(actual)} (from the response's usage) is above max_cost "
        f"{format_usd(max_cost)}; the money is spent and the cassette is kept.{surprise}\n{fix}"
    )


def describe(spec: CaseSpec) -> str:
    quality = spec.quality or "auto"
    return f"{spec.model} {spec.size} quality={quality} n={spec.n}"


def _fix_hint(nodeid: str) -> str:
    return f"re-record it with {command('--imagegen-record-mode=all', nodeid)}"


def obtain(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    """The case's images: replayed from its cassette, or recorded, per the record mode."""
    from . import recording

    mode = ctx.settings.record_mode
    path = recording.suite_cassette_path(spec.path, spec.id)
    body = spec.request_body()
    fix = _fix_hint(result.nodeid)
    prefetch_error = prefetch_failed(ctx.session_dir, result.nodeid)
    if prefetch_error is not None:  # its request was sent (or refused) already
        raise CassetteError(prefetch_error)
    state = recording.cassette_state(path, body, fix)
    cost = format_usd(result.list_cost or 0.0)
    if state.status == "fresh" and (mode != "all" or recorded_now(path, ctx, fix)):
        return replay(spec, ctx, result, path, fix)
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
            f"stale cassette for {result.nodeid}: the case changed since {path.name} was "
            f"recorded:\n{changed}\n"
            f"  re-record it with {command('--imagegen-record-mode=new_episodes', result.nodeid)} "
            f"(estimated cost {cost})"
        )
    from .locks import file_lock

    # one recording per cassette in the session: a concurrent prefetch (or another
    # xdist worker) may be recording it right now
    with file_lock(path, timeout=ctx.settings.timeout * (ctx.settings.max_retries + 2)):
        if recorded_now(path, ctx, fix):
            return replay(spec, ctx, result, path, fix)
        return record(spec, ctx, result, path, fix)


def prefetch_error_path(session_dir: Path, nodeid: str) -> Path:
    import hashlib

    return session_dir / f"prefetch-{hashlib.sha256(nodeid.encode()).hexdigest()[:24]}.txt"


def prefetch_failed(session_dir: Path | None, nodeid: str) -> str | None:
    """The error a concurrent prefetch of ``nodeid`` ended with (any process of the session)."""
    if session_dir is None:
        return None
    try:
        return prefetch_error_path(session_dir, nodeid).read_text(encoding="utf-8")
    except OSError:
        return None


def recorded_now(path: Path, ctx: RunContext, fix: str) -> bool:
    """The cassette was recorded by this session (the prefetch, another worker)."""
    from . import recording

    if not path.is_file():
        return False
    return (
        bool(ctx.session_id) and recording.recorded_meta(path, fix).get("session") == ctx.session_id
    )


def _replayed(ctx: RunContext, result: CaseResult, meta: Mapping[str, Any]) -> None:
    """Set what a replay saved; a cassette this session recorded (the prefetch, another
    worker) is reported as recorded, with what it cost."""
    if ctx.session_id and meta.get("session") == ctx.session_id:
        result.cassette, result.saved = "recorded", 0.0
        result.actual_cost = float(meta.get("actual_cost") or 0.0)
        return
    result.cassette = "replayed"
    result.saved = float(meta.get("actual_cost") or result.list_cost or 0.0)


def _named_changes(spec: CaseSpec, state: Any) -> list[str]:
    """The stale fields, an edit's input files named instead of their sha256."""
    if not spec.is_edit:
        return list(state.changes)
    old = (state.meta.get("request") or {}) if isinstance(state.meta, dict) else {}
    listed = old.get("image[]")
    old_images: list[Any] = listed if isinstance(listed, list) else []
    lines = [c for c in state.changes if not c.startswith(("image[]:", "mask:"))]
    for index, f in enumerate(spec.inputs):
        if index >= len(old_images) or old_images[index] != f.sha256:
            lines.append(f"image {f.shown!r} changed since the cassette was recorded")
    if spec.mask is not None and old.get("mask") != spec.mask.sha256:
        lines.append(f"mask {spec.mask.shown!r} changed since the cassette was recorded")
    return lines or list(state.changes)


def replay(spec: CaseSpec, ctx: RunContext, result: CaseResult, path: Path, fix: str) -> Generation:
    from . import recording

    store = recording.ImageStore(recording.suite_images_dir(spec.path))
    fast = recording.replay_generation(path, spec.request_body(), store, fix)
    if fast is not None:
        generation, meta = fast
        _replayed(ctx, result, meta)
        return generation
    persister = recording.Persister(store, [], fix=fix)
    try:
        with recording.open_cassette(path, persister, record=False):
            generation = send(ctx.replay_client(), spec, spec.request_body())
    except CassetteError:
        raise
    except Exception as exc:
        if type(exc).__name__ != "CannotOverwriteExistingCassetteException":
            raise recording.damaged(path, f"replay failed ({recording.why(exc)})", fix) from None
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
    from . import recording

    client = ctx.client(private=direct)  # raises before anything is sent when no key is set
    body = spec.request_body()
    persister = recording.Persister(
        recording.ImageStore(recording.suite_images_dir(spec.path)),
        ctx.redactor,
        fix=fix,
        fresh=True,
    )
    persister.request_body = body
    list_cost = ctx.image_list_cost(spec)
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
        contextlib.nullcontext()
        if direct
        else recording.open_cassette(path, persister, record=True),
    ):
        if direct:
            client.exchanges = []
        generation = send(client, spec, body)
        result.attempts = charge.attempts = generation.attempts
        actual = price_response(ctx, spec.model, generation.usage, list_cost, result)
        result.cassette, result.actual_cost = "live", actual  # paid, even if saving fails
        charge.actual = actual
        persister.meta = recording.new_meta(
            nodeid=result.nodeid,
            session=ctx.session_id,
            request=body,
            list_cost=result.list_cost,
            actual_cost=actual,
            usage=generation.usage,
        )
        if direct:
            recording.save_responses(path, persister, client.exchanges or [])
    if direct:
        client.close()
    result.cassette = "recorded" if persister.saved else "live"
    return generation


def price_response(
    ctx: RunContext, model: str, usage: Any, list_cost: float, result: CaseResult
) -> float:
    """Actual cost of a 2xx answer; unreadable usage is booked at list cost, with a note."""
    priced = ctx.prices.price_usage(model, usage, list_cost)
    if priced.problem:
        result.notes.append(
            f"{result.nodeid}: the response's usage cannot be priced ({priced.problem}); "
            f"booked at list cost {format_usd(list_cost)}"
        )
    return priced.cost


def send(client: ImagesClient, spec: CaseSpec, body: Mapping[str, Any]) -> Generation:
    """The case's request: a generation, or an edit of its input images (multipart)."""
    if not spec.is_edit:
        return client.generate(body)
    from . import edits

    def part(f: edits.InputFile) -> tuple[str, bytes, str]:
        return (f.path.name, f.read(), f.content_type)

    return client.edit(
        edits.fields({k: v for k, v in body.items() if k not in ("image[]", "mask")}),
        [part(f) for f in spec.inputs],
        part(spec.mask) if spec.mask else None,
    )


def settle(spec: CaseSpec, ctx: RunContext, result: CaseResult, generation: Generation) -> None:
    """Actual cost of a live call and the after-the-fact ceiling check."""
    result.actual_cost = ctx.prices.actual_cost(
        spec.model, generation.usage, ctx.image_list_cost(spec)
    )  # noted when recorded (price_response)
    if result.max_cost is not None and result.actual_cost > result.max_cost:
        result.ceiling = "actual"
        raise actual_ceiling_error(result.actual_cost, result.max_cost, result.list_cost)


def run_case(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    """Preflight, obtain the images, settle the cost and check expectations."""
    preflight(spec, ctx, result)
    generation = obtain(spec, ctx, result)
    if result.cassette != "replayed":
        settle(spec, ctx, result, generation)
    images = [image.data for image in generation.images]
    result.revised_prompts = generation.revised_prompts
    from . import recording

    verdicts = None
    if spec.expect.judge is not None:
        from .judging import judge_case

        path = recording.suite_cassette_path(spec.path, spec.id)
        verdicts = judge_case(spec, ctx, result, generation, path)
        if result.max_cost is not None and result.actual_cost > result.max_cost:
            result.ceiling = "actual"
            raise actual_ceiling_error(result.actual_cost, result.max_cost, result.list_cost)
    assessment = assess(
        spec.expect,
        images,
        fix=_fix_hint(result.nodeid),
        shas=[image.sha256 for image in generation.images],
        images_dir=recording.suite_images_dir(spec.path),
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
    from . import drift, perceptual, recording

    s = ctx.settings
    outcome = drift.check(
        nodeid=result.nodeid,
        key=spec.id,
        images=images,
        shas=shas,
        prompt=spec.prompt,
        baseline_file=perceptual.baseline_path(spec.path),
        images_dir=recording.suite_images_dir(spec.path),
        thresholds=drift.thresholds_for(spec.expect.drift, s.drift_thresholds),
        mode=s.drift_mode,
        update=s.update_baselines,
        # a missing baseline is accepted while recording (not only for the cases recorded
        # now: an interrupted recording run still gets its baselines on the next run)
        recorded=result.cassette in ("recorded", "live") or s.record_mode != "none",
        cache=ctx.baselines,
        html_dir=s.html_dir,
    )
    apply_drift(result, outcome)
    drift.raise_for(outcome)


def apply_drift(result: CaseResult, outcome: DriftCheck) -> None:
    """Record a drift check on the result: report data, baseline update, note, warning."""
    result.drift = outcome.data
    if outcome.update:
        result.baseline_updates.append(outcome.update)
    if outcome.note:
        result.notes.append(outcome.note)
    if outcome.status == "warn":
        result.warning = outcome.message
