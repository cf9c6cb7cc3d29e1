"""``expect.judge`` for suite cases: recorded once with the images, replayed for $0.

The verdicts live in the case's cassette: under ``imagegen.judge`` (model,
rubric, and per image its sha256, score, reason, usage and cost) and as chat
interactions in vcrpy's format next to the image interaction (the request's
downscaled image is named by the full image's ``imagegen-sha256`` reference
instead of being stored twice). A replay takes the verdicts from there when
the judge model and rubric are unchanged; ``min_score`` is applied to the
recorded scores, so changing it costs nothing. A changed model or rubric is
stale *for the judge only*: ``new_episodes`` re-judges the recorded images
(no new image is generated), ``none``/``once`` fail saying so and what the
re-judging costs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.errors import UNREADABLE, APIError, CassetteError, command
from ..checks import judge
from ..money.pipeline import PaidCall, overbilled_judge_note, paid_call
from ..money.prices import format_usd

if TYPE_CHECKING:
    from ..api.client import Generation
    from ..cassettes.cassette import CaseCassette
    from ..money.context import RunContext
    from ..review.results import CaseResult
    from .spec import CaseSpec


@dataclass(frozen=True)
class JudgeConfig:
    model: str
    rubric: str
    min_score: float

    def list_cost_per_image(self, ctx: RunContext) -> float:
        chars = judge.prompt_chars(self.rubric)
        return ctx.prices.judge_list_cost(self.model, chars, judge.MAX_OUTPUT_TOKENS)


def config_for(spec: CaseSpec, ctx: RunContext) -> JudgeConfig | None:
    j = spec.expect.judge
    if j is None:
        return None
    s = ctx.settings
    return JudgeConfig(
        model=j.model or s.judge_model,
        rubric=j.rubric,
        min_score=j.min_score if j.min_score is not None else s.judge_min_score,
    )


def recorded_verdicts(
    meta: Any, cfg: JudgeConfig, shas: Sequence[str]
) -> list[dict[str, Any]] | None:
    """The cassette's verdicts for these images under this model and rubric, if complete."""
    if not isinstance(meta, Mapping):
        return None
    results = meta.get("results")
    if meta.get("model") != cfg.model or meta.get("rubric") != cfg.rubric:
        return None
    if not isinstance(results, list):
        return None
    by_sha = {}
    for entry in results:
        if (
            isinstance(entry, Mapping)
            and isinstance(entry.get("image_sha256"), str)
            and isinstance(entry.get("score"), (int, float))
            and not isinstance(entry.get("score"), bool)
            and 0 <= entry["score"] <= 1
        ):
            by_sha[entry["image_sha256"]] = dict(entry)
    if not all(sha in by_sha for sha in shas):
        return None
    return [by_sha[sha] for sha in shas]


def changes(meta: Any, cfg: JudgeConfig) -> str:
    """What changed since the judge was recorded, for the stale message."""
    if not isinstance(meta, Mapping) or not meta.get("results"):
        return "no judge recorded yet"
    out = []
    for name in ("rubric", "model"):
        old, new = meta.get(name), getattr(cfg, name)
        if old != new:
            out.append(f"{name} {str(old)[:60]!r} → {str(new)[:60]!r}")
    return ", ".join(out) or "the recorded verdicts do not cover these images"


def judge_case(
    spec: CaseSpec,
    ctx: RunContext,
    result: CaseResult,
    generation: Generation,
    cassette: CaseCassette,
) -> list[judge.Verdict]:
    """The verdict on every image: from the cassette, or asked of the judge (and recorded)."""
    cfg = config_for(spec, ctx)
    assert cfg is not None
    shas = [i.sha256 or hashlib.sha256(i.data).hexdigest() for i in generation.images]
    meta = cassette.meta.get("judge") if cassette.exists else None
    entries = recorded_verdicts(meta, cfg, shas)
    if entries is None:
        from ..api.locks import file_lock

        # one judging per cassette: another process may be judging these images right now
        root = ctx.state_dir or cassette.path.parent
        with file_lock(cassette.path, root, timeout=ctx.settings.timeout * 10):
            if cassette.exists:
                meta = cassette.reload().meta.get("judge")
                entries = recorded_verdicts(meta, cfg, shas)
            if entries is None:
                _refuse_stale(result, ctx, cfg, meta, len(shas))
                entries = _ask(spec, ctx, result, generation, shas, cfg, cassette)
    elif result.cassette == "replayed":
        result.saved += sum(float(e.get("actual_cost") or 0.0) for e in entries)
    verdicts = [judge.Verdict(float(e["score"]), str(e.get("reason") or "")) for e in entries]
    result.judge = {
        "model": cfg.model,
        "rubric": cfg.rubric,
        "min_score": cfg.min_score,
        "images": [{"score": v.score, "reason": v.reason} for v in verdicts],
    }
    return verdicts


def _refuse_stale(
    result: CaseResult, ctx: RunContext, cfg: JudgeConfig, meta: Any, images: int
) -> None:
    """Replay never judges; ``once`` judges what was never judged but leaves a changed
    judge to ``new_episodes`` (it costs money)."""
    mode = ctx.settings.record_mode
    just_recorded = result.cassette in ("recorded", "live")
    never_judged = not isinstance(meta, Mapping) or not meta.get("results")
    if just_recorded or mode in ("new_episodes", "all") or (mode == "once" and never_judged):
        return
    cost = cfg.list_cost_per_image(ctx) * images
    raise CassetteError(
        f"stale judge for {result.nodeid}: judge changed: {changes(meta, cfg)}; "
        f"re-judge with {command('--imagegen-record-mode=new_episodes', result.nodeid)} "
        f"(cost {format_usd(cost)}, no new image)"
    )


def _ask(
    spec: CaseSpec,
    ctx: RunContext,
    result: CaseResult,
    generation: Generation,
    shas: list[str],
    cfg: JudgeConfig,
    cassette: CaseCassette,
) -> list[dict[str, Any]]:
    from ..cassettes.store import image_extension

    client = ctx.client()  # no key: fails before anything is sent
    per_image = cfg.list_cost_per_image(ctx)
    entries, interactions = [], []
    for image, sha in zip(generation.images, shas, strict=True):
        body = judge.request_body(cfg.model, cfg.rubric, judge.data_url(image.data))
        ledger_body = {"model": cfg.model, "prompt": cfg.rubric, "image_sha256": sha}
        call: PaidCall | None = None
        try:
            with paid_call(
                ctx,
                nodeid=result.nodeid,
                suite=spec.suite,
                category=spec.category,
                body=ledger_body,
                list_cost=per_image,
                ledger_root=ctx.suites_root(spec.path),
                kind="judge",
                price_key=f"judge {cfg.model}",
            ) as call:
                payload, _ = client.chat(body, hooks=call)
                priced = ctx.prices.judge_actual_cost(cfg.model, payload.get("usage"), per_image)
                if priced.problem:
                    result.notes.append(
                        f"{result.nodeid}: the judge's usage cannot be priced ({priced.problem}); "
                        f"booked at list cost {format_usd(per_image)}"
                    )
                try:
                    verdict = judge.parse_answer(payload)
                except judge.UnreadableAnswer as exc:
                    call.close(priced.cost, "unreadable answer, booked")
                    raise APIError(
                        f"the judge's answer cannot be read ({exc}); the call was paid",
                        outcome=UNREADABLE,
                    ) from None
                call.close(priced.cost, "ok", calibrate=priced.basis != "list")
                note = overbilled_judge_note(cfg.model, per_image, priced.cost)
                if note and note not in result.notes:
                    result.notes.append(note)
        finally:
            if call is not None:
                result.judge_cost += call.booked
                result.actual_cost += call.booked
        entries.append(
            {
                "image_sha256": sha,
                "score": verdict.score,
                "reason": verdict.reason,
                "usage": payload.get("usage"),
                "list_cost": per_image,
                "actual_cost": priced.cost,
            }
        )
        ext = image_extension(image.data)
        interactions.append(_interaction(client.base_url, body, payload, f"{sha}.{ext}"))
    cassette.add_judge(
        {"model": cfg.model, "rubric": cfg.rubric, "results": entries}, interactions, ctx.redactor
    )
    return entries


def _interaction(base_url: str, body: dict[str, Any], payload: Any, ref: str) -> dict[str, Any]:
    """A judge call in vcrpy's cassette format, the image named by its sidecar reference."""
    from ..cassettes.format import MARKER

    stored = json.loads(json.dumps(body))
    for part in stored["messages"][1]["content"]:
        if part.get("type") == "image_url":
            part["image_url"]["url"] = MARKER + ref  # sent downscaled to <= 512 px
    return {
        "request": {
            "method": "POST",
            "uri": base_url.rstrip("/") + "/chat/completions",
            "body": json.dumps(stored, sort_keys=True),
            "headers": {"Content-Type": ["application/json"]},
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Type": ["application/json"]},
            "body": {"string": json.dumps(payload)},
        },
    }
