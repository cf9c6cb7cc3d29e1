"""What the review page needs of a case, whatever its state (SPEC §17).

A case that fails before its images are known (stale, no cassette, over its
ceiling or the budget) still has an accepted baseline, and often a cassette
with the images it was recorded with: :func:`complete` puts both on the
:class:`~pytest_imagegen.review.results.CaseResult`, with the prompt they were
made from and the approval record, so the page never says "no baseline" or
"no images" when there are some. Everything read here is untrusted: image
names go through the validated paths of :mod:`..cassettes.files`, and a
damaged file only leaves its part of the page empty (the test reports it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..api.errors import (
    APIError,
    BudgetExceededError,
    CassetteError,
    CostCeilingError,
    DriftError,
    ExpectationError,
    ImagegenError,
    MissingAPIKeyError,
    QualityError,
)
from ..cassettes.files import UnsafePath, image_path
from ..cassettes.format import DAMAGE, MARKER_RE
from ..cassettes.paths import suite_images_dir
from ..cassettes.remote import image_store
from ..checks import perceptual

if TYPE_CHECKING:
    from ..cassettes.cassette import CaseCassette
    from ..money.context import RunContext
    from ..review.results import CaseResult
    from .spec import CaseSpec

#: exception class -> the failed check's kind (review/states.py names them for people)
_KINDS: tuple[tuple[type[ImagegenError], str], ...] = (
    (BudgetExceededError, "budget"),
    (CostCeilingError, "ceiling"),
    (CassetteError, "cassette"),
    (MissingAPIKeyError, "api"),
    (APIError, "api"),
    (ExpectationError, "expect"),
    (QualityError, "quality"),
    (DriftError, "drift"),
)


def failed_checks(exc: ImagegenError, result: CaseResult) -> list[str]:
    """Every check that failed the case (one message can report several)."""
    kinds = [kind for cls, kind in _KINDS if isinstance(exc, cls)][:1] or ["error"]
    if result.quality_check == "fail":
        kinds.append("quality")
    if (result.drift or {}).get("status") in ("fail", "missing"):
        kinds.append("drift")
    return list(dict.fromkeys(kinds))


def complete(spec: CaseSpec, ctx: RunContext, result: CaseResult, cassette: CaseCassette) -> None:
    """Accepted baseline, and the cassette's images when the test had none of its own."""
    images_dir = suite_images_dir(spec.path)
    store, fetch = image_store(ctx, images_dir), ctx.settings.html_dir is not None
    result.baseline_info = baseline_info(spec, ctx)
    if (result.drift or {}).get("images") or not cassette.exists:
        return
    with contextlib.suppress(ImagegenError, *DAMAGE):
        meta = cassette.meta
        request = meta.get("request")
        if isinstance(request, Mapping) and isinstance(request.get("prompt"), str):
            result.recorded_prompt = request["prompt"]
        verdicts = _recorded_verdicts(meta)
        for sha, ext in _meta_images(meta) or _cassette_images(cassette.data()):
            with contextlib.suppress(UnsafePath):
                image_path(images_dir, sha, ext)  # validated (UnsafePath)
                # with an image store: the cached copy (downloaded for the review page)
                entry = {"sha256": sha, "path": str(store.locate(sha, ext, fetch=fetch))}
                entry.update(verdicts.get(sha, {}))
                result.recorded_images.append(entry)


def baseline_info(spec: CaseSpec, ctx: RunContext) -> dict[str, Any]:
    """The case's accepted images (validated paths), their prompt and approval record."""
    path = perceptual.baseline_path(spec.path)
    images_dir = suite_images_dir(spec.path)
    store, fetch = image_store(ctx, images_dir), ctx.settings.html_dir is not None
    info: dict[str, Any] = {"file": str(path), "images": []}
    try:
        if path not in ctx.baselines:
            ctx.baselines[path] = perceptual.BaselineFile.load(path)
        baseline = ctx.baselines[path]
        accepted = baseline.images(spec.id) or []
        for image in accepted:
            local = perceptual.stored_image(images_dir, image)  # validated
            info["images"].append(
                {
                    "sha256": image["sha256"],
                    "path": str(store.locate(local.stem, local.suffix[1:], fetch=fetch)),
                    "accepted": str(image.get("accepted") or ""),
                }
            )
    except DriftError as exc:
        info["problem"] = str(exc)
        return info
    entry = baseline.cases.get(spec.id)
    entry = entry if isinstance(entry, Mapping) else {}
    prompt_sha = entry.get("prompt_sha256")
    now = perceptual.sha256(spec.prompt.encode("utf-8"))
    info["same_prompt"] = prompt_sha == now if isinstance(prompt_sha, str) else None
    if isinstance(entry.get("prompt"), str):
        info["prompt"] = entry["prompt"]
    for record in ("approved", "rejected"):
        value = entry.get(record)
        if isinstance(value, Mapping):
            info[record] = {str(k): v for k, v in value.items() if isinstance(v, (str, int, float))}
    return info


def _recorded_verdicts(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """sha256 -> the judge's recorded score and reason (a stale case shows what it said)."""
    judge = meta.get("judge")
    results = judge.get("results") if isinstance(judge, Mapping) else None
    out: dict[str, dict[str, Any]] = {}
    for item in results if isinstance(results, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("image_sha256"), str):
            score, reason = item.get("score"), item.get("reason")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                out[item["image_sha256"]] = {
                    "score": float(score),
                    "reason": reason if isinstance(reason, str) else "",
                }
    return out


def _meta_images(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The cassette's ``imagegen.images`` list (``<sha256>.<ext>`` each)."""
    listed = meta.get("images")
    out = []
    for ref in listed if isinstance(listed, list) else []:
        sha, _, ext = str(ref).partition(".")
        out.append((sha, ext))
    return out


def _cassette_images(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The image references (sha256, ext) of a cassette's images interactions, in order."""
    found: list[tuple[str, str]] = []
    for interaction in data.get("interactions") or []:
        if not isinstance(interaction, Mapping):
            continue
        request = interaction.get("request")
        uri = request.get("uri") if isinstance(request, Mapping) else ""
        if "/chat/completions" in str(uri):
            continue
        response = interaction.get("response")
        body = response.get("body") if isinstance(response, Mapping) else None
        text = body.get("string") if isinstance(body, Mapping) else None
        if not isinstance(text, str):
            continue
        m = MARKER_RE.fullmatch(text)
        if m:
            found.append((m.group(1), m.group(2)))
            continue
        with contextlib.suppress(ValueError):
            payload = json.loads(text)
            items = payload.get("data") if isinstance(payload, Mapping) else None
            for item in items if isinstance(items, list) else []:
                b64 = item.get("b64_json") if isinstance(item, Mapping) else None
                m = MARKER_RE.fullmatch(b64) if isinstance(b64, str) else None
                if m:
                    found.append((m.group(1), m.group(2)))
    return list(dict.fromkeys(found))
