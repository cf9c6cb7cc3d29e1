"""The ``expect:`` block of a case, validated into :class:`~pytest_imagegen.checks.expect.Expect`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..api.shape import parse_size
from ..checks.expect import Expect, JudgeSpec
from .spec import DRIFT_ALGORITHMS, EXPECT_KEYS, FORMATS, JUDGE_KEYS
from .yamlfile import LineDict, did_you_mean


def build_expect(
    bad: Callable[..., None], raw: Any, n: int, size: Any, params: Mapping[str, Any]
) -> Expect | None:
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, dict):
        bad("expect", "must be a mapping with count, size, format, drift")
        return None
    ok = True
    for key in raw:
        if key not in EXPECT_KEYS:
            bad("expect", f"unknown key {key!r}{did_you_mean(str(key), EXPECT_KEYS)}; "
                f"allowed: {', '.join(EXPECT_KEYS)}", raw)  # fmt: skip
            ok = False
    count = raw.get("count", n)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        bad("expect", f"count must be a whole number >= 1, got {count!r}", raw)
        ok = False
    exp_size = raw.get("size", size if isinstance(size, str) and parse_size(size) else None)
    if exp_size is not None and (not isinstance(exp_size, str) or parse_size(exp_size) is None):
        bad("expect", f"size must be WxH, e.g. 1024x1024, got {exp_size!r}", raw)
        ok = False
    fmt = raw.get("format", params.get("output_format"))
    pil_format = None
    if fmt is not None:
        pil_format = FORMATS.get(str(fmt).lower())
        if pil_format is None:
            bad("expect", f"format {fmt!r} is not an image format; allowed: png, jpeg, webp", raw)
            ok = False
    drift_raw = raw.get("drift")
    drift: dict[str, int] | None = {}
    if drift_raw is False or drift_raw == "off":
        drift = None
    elif drift_raw is not None:
        if not isinstance(drift_raw, dict):
            bad("expect", "drift must be `off` or a mapping like {phash: 10, colorhash: 4}", raw)
            return None
        for algo, threshold in drift_raw.items():
            if algo not in DRIFT_ALGORITHMS:
                bad("expect", f"drift: unknown algorithm {algo!r}{did_you_mean(str(algo), DRIFT_ALGORITHMS)}; "
                    f"allowed: {', '.join(DRIFT_ALGORITHMS)}", raw)  # fmt: skip
                ok = False
            elif isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
                bad("expect", f"drift: {algo} threshold must be a whole number >= 0, "
                    f"got {threshold!r}", raw)  # fmt: skip
                ok = False
            else:
                assert drift is not None
                drift[str(algo)] = threshold
    text_raw = raw.get("text", [])
    texts = [text_raw] if isinstance(text_raw, str) else text_raw
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        bad("expect", "text must be a string or a list of non-empty strings to read in every "
            'image, e.g. text: ["GRAND OPENING"]', raw)  # fmt: skip
        ok = False
    similarity = raw.get("text_similarity", 0.95)
    if (
        isinstance(similarity, bool)
        or not isinstance(similarity, (int, float))
        or not 0 < similarity <= 1
    ):
        bad(
            "expect",
            f"text_similarity must be a number above 0 and at most 1, got {similarity!r}",
            raw,
        )
        ok = False
    judge = build_judge(bad, raw)
    min_accept = raw.get("min_accept_rate", 1.0)
    if (
        isinstance(min_accept, bool)
        or not isinstance(min_accept, (int, float))
        or not 0 < min_accept <= 1
    ):
        bad(
            "expect",
            f"min_accept_rate must be a number above 0 and at most 1, got {min_accept!r}",
            raw,
        )
        ok = False
    if not ok or judge is False:
        return None
    return Expect(
        count=count,
        size=exp_size,
        format=pil_format,
        drift=drift,
        text=tuple(texts),
        text_similarity=float(similarity),
        judge=judge if isinstance(judge, JudgeSpec) else None,
        min_accept_rate=float(min_accept),
    )


def build_judge(bad: Callable[..., None], raw: Mapping[str, Any]) -> JudgeSpec | bool | None:
    """``expect.judge`` (a rubric string, or a mapping); ``False`` when it is invalid."""
    value = raw.get("judge")
    if value is None:
        return None
    if isinstance(value, str):
        value = {"rubric": value}
    if not isinstance(value, Mapping):
        bad("expect", 'judge must be a rubric string or {rubric: "...", min_score: 0.7, '
            "model: gpt-4.1-mini}", raw)  # fmt: skip
        return False
    unknown = [k for k in value if k not in JUDGE_KEYS]
    rubric, min_score, model = value.get("rubric"), value.get("min_score"), value.get("model")
    problem = None
    if unknown:
        problem = (f"judge: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), JUDGE_KEYS)}; "
                   f"allowed: {', '.join(JUDGE_KEYS)}")  # fmt: skip
    elif not isinstance(rubric, str) or not rubric.strip():
        problem = "judge: rubric must be a non-empty string saying what the image must show"
    elif min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, (int, float))
        or not 0 <= min_score <= 1
    ):  # fmt: skip
        problem = f"judge: min_score must be a number from 0 to 1, got {min_score!r}"
    elif model is not None and not isinstance(model, str):
        problem = "judge: model must be a chat model name, e.g. gpt-4.1-mini"
    if problem:
        bad("expect", problem, raw)
        return False
    return JudgeSpec(
        rubric=str(rubric).strip(),
        min_score=float(min_score) if min_score is not None else None,
        model=model,
    )
