"""The fake server's Gemini route: ``POST /v1beta/models/{model}:generateContent``.

Answers as Google does: images as ``inlineData`` parts of the first candidate,
``usageMetadata`` with the model's fixed output tokens per image (from Google's
table, :mod:`pytest_imagegen.api.providers.gemini`), and Google's error shape
``{"error": {"code", "message", "status"}}`` for what the API refuses.
"""

from __future__ import annotations

import base64
import math
import uuid
from typing import Any

from ..api.providers import gemini

TOP_KEYS = (
    "contents", "generationConfig", "safetySettings", "systemInstruction", "tools",
    "toolConfig", "cachedContent",
)  # fmt: skip
CONFIG_KEYS = (
    "responseModalities", "temperature", "topP", "topK", "seed", "candidateCount",
    "maxOutputTokens", "imageConfig", "thinkingConfig", "stopSequences", "responseMimeType",
)  # fmt: skip
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
          502: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip


def error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": STATUS.get(code, "UNKNOWN")}}


def google_shape(status: int, payload: Any) -> Any:
    """An OpenAI-shaped error answer (an injected failure) in Google's shape."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if status < 400 or not isinstance(err, dict) or "status" in err:
        return payload
    return error(status, str(err.get("message") or "Error."))


def answer(server: Any, model: str, body: Any) -> tuple[int, dict[str, Any]]:
    """``(status, payload)`` for a ``generateContent`` request."""
    found = server.catalog.models.get(model)
    info = gemini.model_info(model)
    if found is None or found.provider != "gemini" or info is None:
        return 404, error(404, f"models/{model} is not found for API version v1beta, or is not "
                          "supported for generateContent. Call ListModels to see the list of "
                          "available models and their supported methods.")  # fmt: skip
    if not isinstance(body, dict):
        return 400, error(400, "Invalid JSON payload received.")
    for key in body:
        if key not in TOP_KEYS:
            return 400, error(400, f'Invalid JSON payload received. Unknown name "{key}": '
                              "Cannot find field.")  # fmt: skip
    prompt = _prompt(body.get("contents"))
    if prompt is None:
        return 400, error(400, "* GenerateContentRequest.contents: contents is not specified")
    config = body.get("generationConfig") or {}
    if not isinstance(config, dict):
        return 400, error(400, "Invalid value at 'generation_config': expected an object.")
    for key in config:
        if key not in CONFIG_KEYS:
            return 400, error(400, f'Invalid JSON payload received. Unknown name "{key}" at '
                              "'generation_config': Cannot find field.")  # fmt: skip
    modalities = config.get("responseModalities") or ["TEXT", "IMAGE"]
    if not isinstance(modalities, list) or any(
        str(m).upper() not in gemini.MODALITIES for m in modalities
    ):
        return 400, error(400, "Invalid value at 'generation_config.response_modalities': "
                          f"{modalities!r}.")  # fmt: skip
    count = config.get("candidateCount", 1)
    if count != 1:
        return 400, error(400, f"Multiple candidates is not enabled for models/{model}.")
    image = config.get("imageConfig") or {}
    ratio = str(image.get("aspectRatio") or "1:1")
    image_size = image.get("imageSize")
    if image_size is not None and not info.takes_image_size:
        return 400, error(400, f"imageSize is not supported for models/{model}.")
    if info.takes_image_size:
        image_size = image_size or "1K"
        if image_size not in gemini.IMAGE_SIZES:
            return 400, error(400, f"Invalid image size {image_size!r}; supported: 1K, 2K, 4K.")
    size = info.size_of(ratio, image_size)
    if size is None:
        return 400, error(400, f"Unsupported aspect ratio {ratio!r} for models/{model}.")
    w, h = (int(v) for v in size.split("x"))
    prompt_tokens = max(1, math.ceil(len(prompt) / 4))
    parts: list[dict[str, Any]] = []
    out_text = 0
    if "TEXT" in [str(m).upper() for m in modalities]:
        parts.append({"text": "Here is the image you asked for."})
        out_text = 8
    image_tokens = 0
    if "IMAGE" in [str(m).upper() for m in modalities]:
        seed = config.get("seed", server.seed)
        data = server.picture_bytes((prompt, size, "auto", seed, 0), w, h, "png", None)
        parts.append({"inlineData": {"mimeType": "image/png",
                                     "data": base64.b64encode(data).decode("ascii")}})  # fmt: skip
        image_tokens = info.tokens[image_size]
    out_tokens = out_text + image_tokens
    details = [d for d in ({"modality": "TEXT", "tokenCount": out_text} if out_text else None,
                           {"modality": "IMAGE", "tokenCount": image_tokens} if image_tokens
                           else None) if d]  # fmt: skip
    return 200, {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
            "candidatesTokensDetails": details,
        },
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }  # fmt: skip


def _prompt(contents: Any) -> str | None:
    """The text of the request's parts (``None`` when there is none)."""
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        return None
    texts = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    text = " ".join(texts).strip()
    return text or None
