"""What a response's ``usage`` says a call cost: every shape of SPEC §12 (pure).

Images style (``input_tokens``, ``input_tokens_details``, ``output_tokens``,
``output_tokens_details``), chat style (``prompt_tokens``, ``completion_tokens``),
Gemini's ``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``,
``thoughtsTokenCount``, per-modality ``*TokensDetails``) and ``total_tokens`` only. Usage that is there but cannot be priced raises
:class:`UnreadableUsage`; callers then book the list cost, never $0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UsageCost:
    """What a response's ``usage`` says the call cost; ``problem`` when it was unreadable."""

    cost: float
    problem: str | None = None
    basis: str = "list"  # "usage" when priced from tokens, "incomplete" when not all were there


class UnreadableUsage(ValueError):
    """``usage`` is present but cannot be priced."""


@dataclass(frozen=True)
class Tokens:
    text_in: int = 0
    image_in: int = 0
    text_out: int = 0
    image_out: int = 0
    unknown: int = 0  # in ``total_tokens`` but in no part: priced at the highest rate
    incomplete: bool = False  # output tokens missing, or the parts below the total


def _count(usage: Mapping[str, Any], path: str) -> int | None:
    """A token count at ``a.b`` in ``usage``: ``None`` if absent, else a whole number >= 0."""
    value: Any = usage
    for part in path.split("."):
        if not isinstance(value, Mapping):
            if value is None:
                return None
            raise UnreadableUsage(f"{path.rsplit('.', 1)[0]} is not a mapping")
        value = value.get(part)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnreadableUsage(f"{path}: {str(value)[:40]!r} is not a number")
    if not math.isfinite(value) or value != int(value):
        raise UnreadableUsage(f"{path}: {value!r} is not a whole number")
    if value < 0:
        raise UnreadableUsage(f"{path}: {int(value)} is negative")
    return int(value)


def _split(total: int | None, details: str, usage: Mapping[str, Any], what: str) -> tuple[int, int]:
    """(text, image) tokens of ``total`` from its ``*_details`` (the rest is ``what``)."""
    text = _count(usage, f"{details}.text_tokens")
    image = _count(usage, f"{details}.image_tokens")
    total = total or 0
    if text is None and image is None:
        return (total, 0) if what == "text" else (0, total)
    if text is None:
        text = total - (image or 0)
    if image is None:
        image = total - text
    if text < 0 or image < 0:
        raise UnreadableUsage(f"{details} add up to more than the total")
    return text, image


#: (input, output) token fields of the images API and of the chat style
USAGE_SHAPES = (("input_tokens", "output_tokens"), ("prompt_tokens", "completion_tokens"))


def usage_tokens(usage: Any) -> Tokens:
    """Tokens by kind from the images, chat, Gemini or total-only ``usage`` shapes."""
    if not isinstance(usage, Mapping):
        raise UnreadableUsage("usage is not a mapping")
    if any(key in usage for key in GEMINI_KEYS):
        return gemini_tokens(usage)
    for inputs, outputs in USAGE_SHAPES:
        if inputs in usage or outputs in usage:
            text_in, image_in = _split(_count(usage, inputs), f"{inputs}_details", usage, "text")
            out_count = _count(usage, outputs)
            text_out, image_out = _split(out_count, f"{outputs}_details", usage, "image")
            total = _count(usage, "total_tokens")
            parts = text_in + image_in + text_out + image_out
            unknown = total - parts if total is not None and total > parts else 0
            incomplete = out_count is None or unknown > 0
            return Tokens(text_in, image_in, text_out, image_out, unknown, incomplete)
    total = _count(usage, "total_tokens")
    if total is not None:
        return Tokens(unknown=total, incomplete=True)
    shown = ", ".join(sorted(map(str, usage))[:6]) or "nothing"
    raise UnreadableUsage(
        f"usage has none of input/output_tokens, prompt/completion_tokens or total_tokens "
        f"(it has {shown})"
    )


GEMINI_KEYS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")


def _modalities(usage: Mapping[str, Any], field: str) -> dict[str, int] | None:
    """``{"TEXT": n, "IMAGE": m}`` of a Gemini ``*TokensDetails`` list (``None``: absent)."""
    details = usage.get(field)
    if details is None:
        return None
    if not isinstance(details, list):
        raise UnreadableUsage(f"{field} is not a list")
    out: dict[str, int] = {}
    for index, item in enumerate(details):
        if not isinstance(item, Mapping):
            raise UnreadableUsage(f"{field}[{index}] is not a mapping")
        count = _count(item, "tokenCount") or 0
        modality = str(item.get("modality") or "TEXT").upper()
        out[modality] = out.get(modality, 0) + count
    return out


def gemini_tokens(usage: Mapping[str, Any]) -> Tokens:
    """Gemini's ``usageMetadata``: prompt tokens by modality (text, else image), output
        tokens by modality (an image model's are image tokens unless the details say
        otherwise), thinking tokens billed as text output, cached prompt tokens at the full
    input rate (the safe side); the total checked against them."""
    prompt = _count(usage, "promptTokenCount") or 0
    out_count = _count(usage, "candidatesTokenCount")
    thoughts = _count(usage, "thoughtsTokenCount") or 0
    tools = _count(usage, "toolUsePromptTokenCount") or 0
    ins = _modalities(usage, "promptTokensDetails")
    outs = _modalities(usage, "candidatesTokensDetails")
    if ins is None:
        text_in, image_in = prompt, 0
    else:
        image_in = ins.get("IMAGE", 0)
        text_in = max(prompt - image_in, sum(v for k, v in ins.items() if k != "IMAGE"))
    if outs is None:
        text_out, image_out = 0, out_count or 0
    else:
        image_out = outs.get("IMAGE", 0)
        text_out = max(
            (out_count or 0) - image_out, sum(v for k, v in outs.items() if k != "IMAGE")
        )
    text_in += tools
    text_out += thoughts
    total = _count(usage, "totalTokenCount")
    parts = text_in + image_in + text_out + image_out
    unknown = total - parts if total is not None and total > parts else 0
    return Tokens(text_in, image_in, text_out, image_out, unknown, out_count is None or unknown > 0)
