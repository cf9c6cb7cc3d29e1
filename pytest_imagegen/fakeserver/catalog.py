"""The fake provider's catalog: which models it serves, what it accepts and what it bills.

A real provider knows nothing of pytest-imagegen's price table, so the fake
server does not import it either: it reads the *published* list prices (the
data file ``pytest_imagegen/money/prices.yaml``, as a provider's price page) and
bills below them, as real APIs do, so a recording through the fake server
always stays within its preflight figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from ..api.shape import AUTO, input_image_tokens, parse_size, patch_image_tokens

#: the fake bills this share of the list price (a real bill is at or below the list)
BILLED_SHARE = 0.95


@dataclass(frozen=True)
class FakeModel:
    """An image model as the fake provider serves it."""

    name: str
    qualities: tuple[str, ...]
    max_n: int
    max_prompt_chars: int | None
    per_image: dict[str, dict[str, float]]  # size -> quality -> USD
    custom: dict[str, Any] | None = None  # free WxH sizes (gpt-image-2)
    output_rate: float | None = None  # USD per 1M image output tokens; None: per image only
    provider: str = "openai"  # the route that serves it (gemini: generateContent)

    def size_problem(self, size: str) -> str | None:
        if size == AUTO:
            return None if self.custom else "auto is not a size for this model"
        if size in self.per_image:
            return None
        wh = parse_size(size)
        c = self.custom
        if wh is None or c is None:
            return "unsupported size"
        w, h = wh
        if max(w, h) > c.get("max_long_edge", 3840) or min(w, h) > c.get("max_short_edge", 2160):
            return "too large"
        if (
            min(w, h) < c.get("min_edge", 16)
            or w % c.get("multiple_of", 16)
            or h % c.get("multiple_of", 16)
        ):
            return "edges must be multiples of 16"
        if max(w, h) / min(w, h) > c.get("max_ratio", 3):
            return "aspect ratio too large"
        return None

    def allowed_sizes(self) -> str:
        listed = ", ".join(self.per_image)
        return f"{listed}, auto or a custom WxH" if self.custom else listed

    def price(self, size: str, quality: str) -> float:
        """The list price of one image (custom sizes by pixel area from the reference)."""
        if size in self.per_image:
            return self.per_image[size][quality]
        assert self.custom is not None
        w, h = parse_size(size) or (1024, 1024)
        ref = str(self.custom["reference"])
        rw, rh = parse_size(ref) or (1024, 1024)
        return math.ceil(self.per_image[ref][quality] * (w * h) / (rw * rh) * 1000 - 1e-9) / 1000

    def output_tokens(self, size: str, quality: str, n: int) -> int:
        """Image output tokens billed for ``n`` images: below their list price."""
        assert self.output_rate is not None
        return math.floor(self.price(size, quality) * n / self.output_rate * 1e6 * BILLED_SHARE)


@dataclass(frozen=True)
class FakeChatModel:
    name: str
    image_tokens: int  # an image of at most 512 px
    tiles: tuple[int, int] | None = None
    patches: float | None = None

    def tokens_for(self, width: int, height: int) -> int:
        """Input tokens a provider bills for an image of this size."""
        if self.tiles is not None:
            return input_image_tokens(width, height, *self.tiles)
        if self.patches is not None:
            return patch_image_tokens(width, height, self.patches)
        return self.image_tokens


@dataclass(frozen=True)
class Catalog:
    models: dict[str, FakeModel] = field(default_factory=dict)
    chat: dict[str, FakeChatModel] = field(default_factory=dict)


@cache
def catalog() -> Catalog:
    """The catalog, read once per process from the published price list."""
    import yaml

    text = resources.files("pytest_imagegen.money").joinpath("prices.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    models = {}
    for name, spec in raw["models"].items():
        rates = spec.get("tokens_per_million") or {}
        per_image = {
            str(s): {str(q): float(p) for q, p in r.items()} for s, r in spec["per_image"].items()
        }
        models[str(name)] = FakeModel(
            name=str(name),
            qualities=tuple(spec.get("qualities") or ()),
            max_n=int(spec.get("max_n", 10)),
            max_prompt_chars=spec.get("max_prompt_chars"),
            per_image=per_image,
            custom=spec.get("custom_sizes"),
            output_rate=float(rates["image_output"]) if rates else None,
            provider=str(spec.get("provider") or "openai"),
        )
    for alias, target in (raw.get("aliases") or {}).items():  # snapshots serve as their model
        if str(target) in models and str(alias) not in models:
            models[str(alias)] = models[str(target)]
    chat = {
        str(name): FakeChatModel(
            str(name),
            int(spec["image_tokens"]),
            (int(spec["tiles"][0]), int(spec["tiles"][1])) if spec.get("tiles") else None,
            float(spec["patches"]) if spec.get("patches") else None,
        )
        for name, spec in (raw.get("chat_models") or {}).items()
    }
    return Catalog(models, chat)
