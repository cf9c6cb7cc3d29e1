"""What a response's ``usage`` says a call cost: every shape of SPEC §12 (pure).

Images style (``input_tokens``, ``input_tokens_details``, ``output_tokens``,
``output_tokens_details``), chat style (``prompt_tokens``, ``completion_tokens``)
and ``total_tokens`` only. Usage that is there but cannot be priced raises
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
    """Tokens by kind from the images, chat or total-only ``usage`` shapes."""
    if not isinstance(usage, Mapping):
        raise UnreadableUsage("usage is not a mapping")
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
