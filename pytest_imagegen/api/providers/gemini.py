"""Gemini's native image route (``generateContent``): sizes, request bodies, answers (pure).

Gemini image models ("Nano Banana") take no ``size``: they take
``generationConfig.imageConfig.aspectRatio`` and, from Gemini 3 on, ``imageSize``
(``1K``, ``2K``, ``4K``), and answer the pixel size of Google's table for that pair.
A suite names the size it wants as WxH from that table (``1376x768`` is 16:9 at 1K
on Gemini 3), so pricing, ``expect.size`` and right-sizing work as for GPT image
models. Output images cost a fixed number of tokens per resolution.

Sources (Google AI for Developers, "Image generation" and the model pages on Vertex
AI, checked 2026-11-20): gemini-2.5-flash-image: 10 aspect ratios at about 1 MP, 1290
output tokens each; gemini-3-pro-image-preview: 1K/2K/4K, 1120 tokens at 1K and 2K, 2000
at 4K, 560 tokens per input image; gemini-3.1-flash-image-preview (Nano Banana 2): 1120
tokens at 1K, 1680 at 2K, 2520 at 4K, 1120 per input image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UNREADABLE, APIError
from ..responses import GeneratedImage, Generation

RATIOS_25 = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
    "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
    "16:9": (1344, 768), "21:9": (1536, 672),
}  # fmt: skip
RATIOS_3 = {  # at 1K; 2K and 4K are twice and four times these
    "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
    "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
    "16:9": (1376, 768), "21:9": (1584, 672),
}  # fmt: skip
IMAGE_SIZES = ("1K", "2K", "4K")
#: generationConfig fields a suite's `params:` may set (the rest of the body: extra_params)
CONFIG_KEYS = (
    "responseModalities", "temperature", "topP", "topK", "seed", "imageConfig",
    "candidateCount", "maxOutputTokens", "thinkingConfig",
)  # fmt: skip
MODALITIES = ("TEXT", "IMAGE")
CASE_KEYS = ("model", "prompt", "n", "size", "quality")


@dataclass(frozen=True)
class GeminiModel:
    family: str
    sizes: Mapping[str, tuple[str, str | None]]  # "WxH" -> (aspectRatio, imageSize or None)
    tokens: Mapping[str | None, int]  # imageSize -> output tokens of one image
    input_image_tokens: int

    @property
    def takes_image_size(self) -> bool:
        return None not in self.tokens

    def size_of(self, ratio: str, image_size: str | None) -> str | None:
        for wh, pair in self.sizes.items():
            if pair == (ratio, image_size):
                return wh
        return None


def _scaled(ratios: Mapping[str, tuple[int, int]]) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    for factor, image_size in ((1, "1K"), (2, "2K"), (4, "4K")):
        for ratio, (w, h) in ratios.items():
            out[f"{w * factor}x{h * factor}"] = (ratio, image_size)
    return out


FAMILIES = {
    "gemini-2.5-flash-image": GeminiModel(
        "gemini-2.5-flash-image",
        {f"{w}x{h}": (ratio, None) for ratio, (w, h) in RATIOS_25.items()},
        {None: 1290},
        258,
    ),
    "gemini-3-pro-image": GeminiModel(
        "gemini-3-pro-image", _scaled(RATIOS_3), {"1K": 1120, "2K": 1120, "4K": 2000}, 560
    ),
    "gemini-3.1-flash-image": GeminiModel(
        "gemini-3.1-flash-image", _scaled(RATIOS_3), {"1K": 1120, "2K": 1680, "4K": 2520}, 1120
    ),
}


def model_info(model: str) -> GeminiModel | None:
    """The Gemini image model family of ``model`` (its snapshots and ``-preview`` names)."""
    for family, info in FAMILIES.items():
        if model == family or model.startswith(family + "-"):
            return info
    return None


def image_config(model: str, size: str) -> dict[str, str]:
    """``imageConfig`` for a WxH size of the model's table (``ValueError`` if not in it)."""
    info = model_info(model)
    if info is None or size not in info.sizes:
        allowed = ", ".join(info.sizes) if info else "the sizes of a Gemini image model"
        raise ValueError(f"{model} has no size {size}; allowed: {allowed}")
    ratio, image_size = info.sizes[size]
    out = {"aspectRatio": ratio}
    if image_size is not None:
        out["imageSize"] = image_size
    return out


def request_body(description: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generateContent`` body of a case: the prompt as a text part; the size as
    ``imageConfig``; ``params`` that are generation settings in ``generationConfig``; any
    other field (``extra_params``: ``safetySettings``, ``tools``, ...) at the top."""
    model, size = str(description.get("model") or ""), str(description.get("size") or "")
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    info = model_info(model)
    if info is not None and size in info.sizes:
        config["imageConfig"] = image_config(model, size)
    n = description.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": str(description.get("prompt") or "")}]}]
    }
    for key, value in description.items():
        if key in CASE_KEYS:
            continue
        if key == "imageConfig" and isinstance(value, Mapping):
            config["imageConfig"] = {**config.get("imageConfig", {}), **value}
        elif key in CONFIG_KEYS:
            config[key] = value
        else:
            body[key] = value
    body["generationConfig"] = config
    return body


def describe(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``generateContent`` body as case fields (what is priced and shown): the prompt
    from its text parts, the size from ``imageConfig`` (1:1 at 1K when unset), ``n`` from
    ``candidateCount``, and how many images it sends (``input_images``)."""
    texts: list[str] = []
    inputs = 0
    contents = body.get("contents")
    for content in contents if isinstance(contents, list) else [contents]:
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, Mapping):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            if "inlineData" in part or "inline_data" in part or "fileData" in part:
                inputs += 1
    config = body.get("generationConfig")
    config = config if isinstance(config, Mapping) else {}
    image = config.get("imageConfig")
    image = image if isinstance(image, Mapping) else {}
    info = model_info(model)
    ratio = str(image.get("aspectRatio") or "1:1")
    image_size = image.get("imageSize") or ("1K" if info and info.takes_image_size else None)
    size = (info.size_of(ratio, image_size) if info else None) or (
        f"{ratio}@{image_size}" if image_size else ratio
    )
    n = config.get("candidateCount")
    out: dict[str, Any] = {
        "model": model,
        "prompt": " ".join(texts),
        "n": n if isinstance(n, int) and n > 0 else 1,
        "size": size,
    }
    if inputs:
        out["input_images"] = inputs
    for key, value in config.items():
        if key not in ("imageConfig", "candidateCount"):
            out[key] = value
    return out


def read(
    payload: Mapping[str, Any],
    fetch: Callable[[int, Mapping[str, Any]], tuple[bytes, str]],
    status: int | None = None,
) -> Generation:
    """The images of a ``generateContent`` answer (``inlineData`` parts) and its
    ``usageMetadata``; an answer without images says why (a block, a finish reason)."""
    images: list[GeneratedImage] = []
    texts: list[str] = []
    reasons: list[str] = []
    candidates = payload.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        if not isinstance(candidate, Mapping):
            continue
        if candidate.get("finishReason") not in (None, "STOP"):
            reasons.append(str(candidate.get("finishReason")))
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, Mapping):
                continue
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(inline, Mapping) and inline.get("data"):
                data, _ = fetch(len(images), {"b64_json": inline["data"]})
                images.append(GeneratedImage(data, None, "inlineData"))
            elif isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
    if not images:
        feedback = payload.get("promptFeedback")
        block = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
        why = f"blocked: {block}" if block else (
            f"finish reason {', '.join(reasons)}" if reasons else "no inlineData part"
        )  # fmt: skip
        said = f"; the model said: {' '.join(texts)[:200]!r}" if texts else ""
        raise APIError(
            f"the Gemini answer has no image ({why}){said}; if the prompt was refused, "
            "rephrase it; check that responseModalities includes IMAGE",
            status=status,
            outcome=UNREADABLE,
        )
    usage = payload.get("usageMetadata")
    meta: dict[str, Any] = {"model_version": payload.get("modelVersion")}
    if texts:
        meta["text"] = " ".join(texts)
    return Generation(images=images, usage=usage if isinstance(usage, dict) else None, meta=meta)
