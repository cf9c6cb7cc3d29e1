"""The generation settings Gemini's ``generateContent`` takes in a suite's ``params:``
(pure; see :mod:`.params`). Sources: the Gemini API reference, ``GenerationConfig`` and
``ImageConfig`` (checked 2026-11-20)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .paramtext import CASE_FIELDS, EXTRA_HINT, did_you_mean
from .providers import gemini

Problem = tuple[str, str]

NUMBERS = {"temperature": (0.0, 2.0), "topP": (0.0, 1.0)}
WHOLE = {"topK": 1, "seed": -(2**31), "maxOutputTokens": 1}
ALLOWED = ("responseModalities", *NUMBERS, *WHOLE, "thinkingConfig", "imageConfig")


def gemini_problems(
    params: Mapping[str, Any], model: str | None, size: str | None
) -> list[Problem]:
    out: list[Problem] = []
    for key, value in params.items():
        key = str(key)
        if key in CASE_FIELDS:
            continue
        if key == "candidateCount":
            out.append((key, "candidateCount is set by the case's `n:`; remove it"))
        elif key not in ALLOWED:
            out.append((key, f"unknown Gemini generation setting {key!r}"
                        f"{did_you_mean(key, ALLOWED)}; allowed: {', '.join(ALLOWED)}; "
                        f"{EXTRA_HINT} (e.g. safetySettings)"))  # fmt: skip
        elif key == "responseModalities":
            problem = _modalities(value)
            if problem:
                out.append((key, problem))
        elif key in NUMBERS:
            low, high = NUMBERS[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not low <= value <= high:
                out.append((key, f"{key} must be a number from {low:g} to {high:g}, got {value!r}"))
        elif key in WHOLE:
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or value < WHOLE[key]:
                out.append((key, f"{key} must be a whole number of at least {WHOLE[key]}, "
                            f"got {value!r}"))  # fmt: skip
        elif key == "thinkingConfig" and not isinstance(value, Mapping):
            out.append((key, "thinkingConfig must be a mapping, e.g. {thinkingBudget: 0}"))
        elif key == "imageConfig":
            out.extend(_image_config(value, model, size))
    return out


def _modalities(value: Any) -> str | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return "responseModalities must be a list, e.g. [IMAGE] or [TEXT, IMAGE]"
    for item in value:
        if item not in gemini.MODALITIES:
            return (f"{item!r} is not a response modality{did_you_mean(item.upper(), gemini.MODALITIES)}; "
                    f"allowed: {', '.join(gemini.MODALITIES)}")  # fmt: skip
    if "IMAGE" not in value:
        return "responseModalities must include IMAGE, or the answer has no image"
    return None


def _image_config(value: Any, model: str | None, size: str | None) -> list[Problem]:
    key = "imageConfig"
    if not isinstance(value, Mapping):
        return [(key, "imageConfig must be a mapping, e.g. {aspectRatio: '16:9', imageSize: 2K}")]
    info = gemini.model_info(model or "")
    ratios = sorted({r for r, _ in info.sizes.values()}) if info else []
    out: list[Problem] = []
    for name, item in value.items():
        if name == "aspectRatio":
            if ratios and item not in ratios:
                out.append((key, f"imageConfig.aspectRatio {item!r} is not one of {model}'s: "
                            f"{', '.join(ratios)}"))  # fmt: skip
        elif name == "imageSize":
            if info is not None and not info.takes_image_size:
                out.append((key, f"{model} takes no imageSize (it makes about 1 MP images); "
                            "remove it"))  # fmt: skip
            elif item not in gemini.IMAGE_SIZES:
                out.append((key, f"imageConfig.imageSize {item!r} is not one of "
                            f"{', '.join(gemini.IMAGE_SIZES)}"))  # fmt: skip
        else:
            out.append((key, f"imageConfig has no {name!r}{did_you_mean(str(name), ('aspectRatio', 'imageSize'))}; "
                        "it takes aspectRatio and imageSize"))  # fmt: skip
    if out or info is None or not size or size not in info.sizes:
        return out
    ratio, image_size = info.sizes[size]
    want_ratio = value.get("aspectRatio", ratio)
    want_size = value.get("imageSize", image_size)
    if (want_ratio, want_size) != (ratio, image_size):
        other = info.size_of(str(want_ratio), want_size)
        shown = f"{ratio} at {image_size}" if image_size else ratio
        instead = f", or set `size: {other}`" if other else ""
        out.append((key, f"imageConfig asks for {want_ratio}"
                    f"{' at ' + str(want_size) if want_size else ''} but size {size} is {shown} "
                    f"(the case's size sets imageConfig); remove imageConfig{instead}"))  # fmt: skip
    return out
