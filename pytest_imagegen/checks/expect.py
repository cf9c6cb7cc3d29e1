"""What a case expects of its images (``expect:``): the checks' own input (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeSpec:
    """``expect.judge``: a vision model scores every image against the rubric (0..1).

    ``model`` and ``min_score`` left ``None`` take the ini defaults
    (``imagegen_judge_model``, ``imagegen_judge_min_score``).
    """

    rubric: str
    min_score: float | None = None
    model: str | None = None


@dataclass(frozen=True)
class Expect:
    count: int
    size: str | None  # WxH every decoded image must have, None: not checked
    format: str | None  # Pillow format name ("PNG", ...), None: not checked
    drift: Mapping[str, int] | None  # per-algorithm thresholds overriding ini; None: off
    drift_defaults: bool = True  # fill missing algorithms from the ini defaults
    text: tuple[str, ...] = ()  # strings OCR must read in every image
    text_similarity: float = 0.95  # see textmatch: 1 - edit distance / len(expected)
    judge: JudgeSpec | None = None
    min_accept_rate: float = 1.0  # right-sizing: a variant passes at this accept rate
