"""The Images API's documented refusals that depend on the model family (SPEC §9): what
GPT image models and DALL·E models each take, and the combinations the API refuses.

Sources: the openai-python SDK's ``ImageGenerateParams`` / ``ImageEditParams``
docstrings and the API reference (checked 2026-11-20): ``response_format`` and
``style`` are DALL·E's (GPT image models always answer base64); ``background``,
``moderation``, ``output_format``, ``output_compression``, ``stream``,
``partial_images`` and (edits) ``input_fidelity`` are GPT image models';
``output_compression`` needs jpeg or webp; a transparent background needs png or
webp; ``partial_images`` (0 to 3) needs ``stream``.
"""

from __future__ import annotations

from typing import Any

GPT_ONLY = (
    "background", "moderation", "output_format", "output_compression", "stream",
    "partial_images", "input_fidelity",
)  # fmt: skip
DALLE_ONLY = ("response_format", "style")
EDIT_ONLY = ("input_fidelity",)
GENERATION_ONLY = ("moderation", "style")


def is_gpt(model: str) -> bool:
    return model.startswith(("gpt-image-", "chatgpt-image-"))


def problem(body: dict[str, Any], model: str, endpoint: str) -> tuple[str, str, str] | None:
    """``(message, param, code)`` of the API's 400 for ``body``, or ``None``."""
    gpt = is_gpt(model)
    for key in body:
        if key in EDIT_ONLY and endpoint != "edits":
            return f"Unknown parameter: '{key}'.", key, "unknown_parameter"
        if key in GENERATION_ONLY and endpoint == "edits":
            return f"Unknown parameter: '{key}'.", key, "unknown_parameter"
        if gpt and key in DALLE_ONLY and body[key] is not None:
            return (f"The '{key}' parameter is not supported for model '{model}'; GPT image "
                    "models always return base64-encoded images.", key, "unsupported_parameter")  # fmt: skip
        if not gpt and key in GPT_ONLY and body[key] is not None:
            return (f"The '{key}' parameter is only supported for GPT image models, not "
                    f"'{model}'.", key, "unsupported_parameter")  # fmt: skip
    fmt = body.get("output_format") or "png"
    if body.get("output_compression") is not None and fmt not in ("jpeg", "webp"):
        return ("Invalid value for 'output_compression': compression is only supported for "
                "the jpeg and webp output formats.", "output_compression", "invalid_value")  # fmt: skip
    compression = body.get("output_compression")
    if compression is not None and (
        isinstance(compression, bool)
        or not isinstance(compression, int)
        or not 0 <= compression <= 100
    ):
        return ("Invalid 'output_compression': must be an integer from 0 to 100.",
                "output_compression", "invalid_value")  # fmt: skip
    if body.get("background") not in (None, "auto", "opaque", "transparent"):
        return (
            f"Invalid value for 'background': '{body['background']}'.",
            "background",
            "invalid_value",
        )
    if body.get("background") == "transparent" and fmt not in ("png", "webp"):
        return ("Transparent background is only supported for the png and webp output "
                "formats.", "background", "invalid_value")  # fmt: skip
    partial = body.get("partial_images")
    if partial is not None:
        if isinstance(partial, bool) or not isinstance(partial, int) or not 0 <= partial <= 3:
            return (
                "Invalid 'partial_images': must be an integer from 0 to 3.",
                "partial_images",
                "invalid_value",
            )
        if body.get("stream") is not True:
            return ("'partial_images' is only supported when 'stream' is true.",
                    "partial_images", "invalid_value")  # fmt: skip
    if body.get("stream") not in (None, True, False):
        return "Invalid type for 'stream': expected a boolean.", "stream", "invalid_type"
    if body.get("input_fidelity") not in (None, "high", "low"):
        return "Invalid value for 'input_fidelity'.", "input_fidelity", "invalid_value"
    return None


def echoed(body: dict[str, Any], model: str, size: str, quality: str, fmt: str) -> dict[str, Any]:
    """What an answer echoes of the request: GPT image models say the size, quality,
    output format and the background they used (``auto`` resolved); DALL·E says nothing."""
    if not is_gpt(model):
        return {}
    background = "transparent" if body.get("background") == "transparent" else "opaque"
    return {"size": size, "quality": quality, "output_format": fmt, "background": background}
