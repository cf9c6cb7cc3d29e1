"""Price table and cost arithmetic (pure: no pytest, no network).

List cost (the preflight figure, known before any request is sent):
    per-image price for (model, size, quality) x n
    + prompt text tokens, estimated high as ceil(characters / 3), x text input rate
Quality ``auto`` or unset is priced at the model's most expensive quality and
size ``auto`` at its most expensive size, so the list cost is never below what
the call is billed. Actual cost comes from the response's ``usage`` tokens.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..api.errors import PriceError
from ..api.shape import AUTO, input_image_tokens, parse_size, patch_image_tokens
from .usage import UnreadableUsage, UsageCost, usage_tokens

#: image output tokens one partial image of a streamed request is billed
PARTIAL_IMAGE_TOKENS = 100


def format_usd(amount: float) -> str:
    """Money for humans: four decimals, enough for per-image prices."""
    return f"${amount:,.4f}"


def estimate_text_tokens(prompt: str) -> int:
    """Prompt tokens estimated high (real tokenizers average ~4 chars/token)."""
    return math.ceil(len(prompt) / 3)


@dataclass(frozen=True)
class CustomSizes:
    """Rules for free-form WxH sizes, priced by area from a reference size."""

    reference: str
    multiple_of: int
    max_ratio: float
    max_long_edge: int
    max_short_edge: int
    min_edge: int

    def problem(self, w: int, h: int) -> str | None:
        if max(w, h) > self.max_long_edge or min(w, h) > self.max_short_edge:
            return f"too large: at most {self.max_long_edge}x{self.max_short_edge} (either orientation)"
        if min(w, h) < self.min_edge:
            return f"too small: the shorter edge must be at least {self.min_edge}"
        if w % self.multiple_of or h % self.multiple_of:
            return f"both edges must be multiples of {self.multiple_of}"
        if max(w, h) / min(w, h) > self.max_ratio:
            return f"the aspect ratio must be at most {self.max_ratio:g}:1"
        return None


@dataclass(frozen=True)
class TokenRates:
    """USD per one million tokens."""

    text_input: float
    image_input: float
    image_output: float
    text_output: float | None = None  # unset: text output priced at the image output rate


@dataclass(frozen=True)
class ModelPrices:
    name: str
    qualities: tuple[str, ...]
    per_image: Mapping[str, Mapping[str, float]]
    max_n: int = 10
    max_prompt_chars: int | None = None
    custom_sizes: CustomSizes | None = None
    tokens: TokenRates | None = None
    source: str = ""
    provider: str = "openai"  # the request shape that serves it (SPEC §19)

    def allowed_sizes(self) -> str:
        listed = ", ".join(self.per_image)
        if self.custom_sizes:
            c = self.custom_sizes
            return (
                f"{listed}, auto, or any WxH with edges multiples of {c.multiple_of}, "
                f"ratio <= {c.max_ratio:g}:1, up to {c.max_long_edge}x{c.max_short_edge}"
            )
        return listed

    def size_problem(self, size: str) -> str | None:
        """Why ``size`` cannot be used with this model, or ``None``."""
        if size == AUTO:
            return None if self.custom_sizes else f"`auto` is not a size for {self.name}"
        if size in self.per_image:
            return None
        wh = parse_size(size)
        if wh is None:
            return "not a WxH size"
        if self.custom_sizes is None:
            return f"{self.name} has no price for size {size}"
        return self.custom_sizes.problem(*wh)

    def quality_problem(self, quality: str | None) -> str | None:
        if quality is None or quality == AUTO or quality in self.qualities:
            return None
        return f"{self.name} does not take quality {quality!r}"

    def image_price(self, size: str, quality: str | None) -> float:
        """Per-image list price; ``auto``/unset quality and ``auto`` size price high."""
        problem = self.size_problem(size) or self.quality_problem(quality)
        if problem:
            raise PriceError(f"no price for {self.name} size={size} quality={quality}: {problem}")
        qualities = self.qualities if quality in (None, AUTO) else (quality,)
        if size == AUTO:
            rows = list(self.per_image.values())
        elif size in self.per_image:
            rows = [self.per_image[size]]
        else:
            assert self.custom_sizes is not None
            w, h = parse_size(size) or (0, 0)
            ref = self.per_image[self.custom_sizes.reference]
            rw, rh = parse_size(self.custom_sizes.reference) or (1, 1)
            scale = (w * h) / (rw * rh)
            # priced by area, rounded up to the next tenth of a cent
            rows = [{q: math.ceil(p * scale * 1000 - 1e-9) / 1000 for q, p in ref.items()}]
        prices = [row[q] for row in rows for q in qualities if q in row]
        if not prices:
            raise PriceError(f"no price for {self.name} size={size} quality={quality}")
        return max(prices)


@dataclass(frozen=True)
class CostBreakdown:
    images: float
    text: float
    multiplier: float

    @property
    def total(self) -> float:
        return round((self.images + self.text) * self.multiplier, 6)


@dataclass(frozen=True)
class ChatPrices:
    """A chat model used as a vision judge: USD per 1M tokens, and an image's input tokens."""

    name: str
    input: float
    output: float
    image_tokens: int  # one image of at most 512 px (the judge's)
    source: str = ""
    tiles: tuple[int, int] | None = None  # (base, per 512 px tile) tokens of an image
    patches: float | None = None  # or: 32 px patches times this multiplier

    def image_input_tokens(self, width: int | None, height: int | None, detail: str) -> int:
        """Input tokens of one image of this size (``None``: unknown, priced as 2048 x 2048)
        at its ``detail`` setting, estimated high."""
        w, h = (width or 2048), (height or 2048)
        if self.tiles is not None:
            base, per_tile = self.tiles
            return base if detail == "low" else input_image_tokens(w, h, base, per_tile)
        if self.patches is not None:
            return patch_image_tokens(w, h, self.patches)
        return self.image_tokens if max(w, h) <= 512 else self.image_tokens * 4


@dataclass
class PriceTable:
    models: dict[str, ModelPrices] = field(default_factory=dict)
    multiplier: float = 1.0
    sources: tuple[str, ...] = ()
    chat: dict[str, ChatPrices] = field(default_factory=dict)
    #: other names of priced models (dated snapshots, moving aliases) -> the priced model
    aliases: dict[str, str] = field(default_factory=dict)

    def chat_model(self, name: str) -> ChatPrices:
        try:
            return self.chat[name]
        except KeyError:
            known = ", ".join(sorted(self.chat))
            raise PriceError(
                f"unknown judge model {name!r}: no price known (known: {known}); add it under "
                "`chat_models:` in a price file named by the ini key `imagegen_prices`"
            ) from None

    def judge_list_cost(self, model: str, prompt_chars: int, max_output_tokens: int) -> float:
        """One judged image, estimated high: the image's tokens, the prompt text's (chars / 3)
        and every output token the judge may write."""
        return self.chat_list_cost(model, 1, prompt_chars, max_output_tokens)

    def chat_list_cost(
        self,
        model: str,
        images: int | Sequence[tuple[int | None, int | None, str]],
        prompt_chars: int,
        max_output_tokens: int,
    ) -> float:
        """A chat call, estimated high: ``images`` images of at most 512 px (the judge's), or
        each image priced by its real size and detail setting (a test's own call)."""
        m = self.chat_model(model)
        if isinstance(images, int):
            image_tokens = images * m.image_tokens
        else:
            image_tokens = sum(m.image_input_tokens(w, h, d) for w, h, d in images)
        tokens_in = image_tokens + math.ceil(prompt_chars / 3)
        cost = (tokens_in * m.input + max_output_tokens * m.output) / 1e6
        return round(cost * self.multiplier, 6)

    def judge_actual_cost(self, model: str, usage: Any, list_cost: float) -> UsageCost:
        """Billed cost of one judge call from its chat ``usage``; list cost when unreadable."""
        m = self.chat_model(model)
        if usage is None:
            return UsageCost(list_cost)
        try:
            tokens = usage_tokens(usage)
        except UnreadableUsage as exc:
            return UsageCost(list_cost, str(exc))
        cost = (
            (tokens.text_in + tokens.image_in) * m.input
            + (tokens.text_out + tokens.image_out) * m.output
            + tokens.unknown * max(m.input, m.output)
        ) / 1e6
        cost = round(cost * self.multiplier, 6)
        if tokens.incomplete:
            return UsageCost(max(cost, list_cost), None, "incomplete")
        return UsageCost(cost, None, "usage")

    @classmethod
    def load(cls, overrides: Path | None = None, multiplier: float = 1.0) -> PriceTable:
        """The shipped table, with ``overrides`` (a YAML price file) merged over it."""
        import yaml

        raw = yaml.safe_load(resources.files(__package__).joinpath("prices.yaml").read_text())
        sources = ["pytest-imagegen shipped prices.yaml"]
        if overrides is not None:
            try:
                extra = yaml.safe_load(Path(overrides).read_text(encoding="utf-8")) or {}
            except OSError as exc:
                raise PriceError(
                    f"imagegen_prices: cannot read {overrides}: {exc.strerror}"
                ) from None
            except yaml.YAMLError as exc:
                raise PriceError(f"imagegen_prices: {overrides} is not valid YAML: {exc}") from None
            if not isinstance(extra, dict) or not isinstance(extra.get("models", {}), dict):
                raise PriceError(
                    f"imagegen_prices: {overrides} must be a mapping with a `models:` mapping"
                )
            raw["models"] = _merge(raw["models"], extra.get("models") or {})
            raw["chat_models"] = _merge(
                raw.get("chat_models") or {}, extra.get("chat_models") or {}
            )
            if not isinstance(extra.get("aliases") or {}, dict):
                raise PriceError(
                    f"imagegen_prices: {overrides}: `aliases:` must map a model name to a "
                    "priced model, e.g. `my-snapshot: gpt-image-2`"
                )
            raw["aliases"] = {**(raw.get("aliases") or {}), **(extra.get("aliases") or {})}
            sources.append(str(overrides))
        if not (isinstance(multiplier, (int, float)) and multiplier > 0):
            raise PriceError(f"imagegen_price_multiplier must be a number > 0, got {multiplier!r}")
        models = {}
        for name, spec in raw["models"].items():
            try:
                models[name] = _model_from_dict(str(name), spec)
            except (KeyError, TypeError, ValueError) as exc:
                raise PriceError(
                    f"price table entry for model {name!r} is malformed ({exc}); "
                    "see pytest_imagegen/prices.yaml for the expected shape"
                ) from None
        chat = {}
        for name, spec in (raw.get("chat_models") or {}).items():
            try:
                chat[str(name)] = ChatPrices(
                    name=str(name),
                    input=float(spec["input"]),
                    output=float(spec["output"]),
                    image_tokens=int(spec["image_tokens"]),
                    source=str(spec.get("source", "")),
                    tiles=tuple(int(v) for v in spec["tiles"])  # type: ignore[arg-type]
                    if spec.get("tiles")
                    else None,
                    patches=float(spec["patches"]) if spec.get("patches") else None,
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise PriceError(
                    f"price table entry for chat model {name!r} is malformed ({exc}); it needs "
                    "input, output (USD per 1M tokens) and image_tokens"
                ) from None
        aliases = _aliases(raw.get("aliases") or {}, models)
        return cls(
            models=models,
            multiplier=float(multiplier),
            sources=tuple(sources),
            chat=chat,
            aliases=aliases,
        )

    def model(self, name: str) -> ModelPrices:
        """The prices of ``name``: a priced model, or an alias of one (``aliases:``)."""
        found = self.models.get(name) or self.models.get(self.aliases.get(name, ""))
        if found is not None:
            return found
        close = difflib.get_close_matches(str(name), [*self.models, *self.aliases], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(self.models))
        raise PriceError(
            f"unknown model {name!r}{hint}: no price known (priced: {known}; and their "
            f"aliases: {', '.join(sorted(self.aliases)) or 'none'}); add it to a price file "
            "named by the ini key `imagegen_prices`, under `models:` or as an alias of a "
            "priced model under `aliases:` (e.g. `aliases: {my-model: gpt-image-2}`)"
        )

    def provider_of(self, model: str) -> str | None:
        """The provider a model's price entry names (an alias: its model's); ``None`` when
        the model is not priced."""
        found = self.models.get(model) or self.models.get(self.aliases.get(model, ""))
        return found.provider if found is not None else None

    def add_deployments(self, deployments: Mapping[str, str]) -> None:
        """Azure deployments (ini ``imagegen_deployments``) priced as the model each maps to."""
        for name, model in deployments.items():
            if model not in self.models and model not in self.aliases:
                close = difflib.get_close_matches(model, [*self.models, *self.aliases], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PriceError(
                    f"ini imagegen_deployments: deployment {name!r} maps to {model!r}{hint}, "
                    f"which has no price; map it to a priced model: {', '.join(sorted(self.models))}"
                )
            self.aliases[name] = self.aliases.get(model, model)

    def list_cost(
        self,
        model: str,
        size: str,
        quality: str | None,
        n: int,
        prompt: str,
        *,
        partial_images: int = 0,
    ) -> CostBreakdown:
        """``partial_images``: a streamed request's partial images per image, each billed
        :data:`PARTIAL_IMAGE_TOKENS` image output tokens (OpenAI image generation guide,
        "Streaming"; checked 2026-11-20)."""
        m = self.model(model)
        images = m.image_price(size, quality) * n
        if partial_images and m.tokens is not None:
            images += n * partial_images * PARTIAL_IMAGE_TOKENS * m.tokens.image_output / 1e6
        text = 0.0
        if m.tokens is not None:
            text = estimate_text_tokens(prompt) * m.tokens.text_input / 1e6
        return CostBreakdown(images=images, text=text, multiplier=self.multiplier)

    def input_images_cost(self, model: str, sizes: Iterable[tuple[int, int]]) -> float:
        """An edit's input images (and mask) at the image input rate, estimated high
        (see ``edits.input_image_tokens``); models priced per image only add nothing."""
        m = self.model(model)
        if m.tokens is None:
            return 0.0
        tokens = sum(input_image_tokens(w, h) for w, h in sizes)
        return round(tokens * m.tokens.image_input / 1e6 * self.multiplier, 6)

    def actual_cost(self, model: str, usage: Any, list_cost: float) -> float:
        """Billed cost from ``usage`` tokens; the list cost when they are missing."""
        return self.price_usage(model, usage, list_cost).cost

    def price_usage(self, model: str, usage: Any, list_cost: float) -> UsageCost:
        """Billed cost from ``usage`` in any shape of SPEC §12; never $0 by accident.

        Missing usage (or a model priced per image only) gives the list cost; usage
        that is there but cannot be priced (negative or non-numeric counts, an
        unknown shape) gives the list cost and a ``problem`` to warn about.
        """
        m = self.model(model)
        if usage is None or m.tokens is None:
            return UsageCost(list_cost)
        try:
            tokens = usage_tokens(usage)
        except UnreadableUsage as exc:
            return UsageCost(list_cost, str(exc))
        rates = m.tokens
        cost = (
            tokens.text_in * rates.text_input
            + tokens.image_in * rates.image_input
            + tokens.image_out * rates.image_output
            + tokens.text_out * (rates.text_output or rates.image_output)
            + tokens.unknown * max(rates.text_input, rates.image_input, rates.image_output)
        ) / 1e6
        cost = round(cost * self.multiplier, 6)
        if tokens.incomplete or tokens.image_out + tokens.text_out == 0:
            # an images answer always has output tokens: what is missing may have been
            # billed, so the higher of the list cost and what the known parts imply
            return UsageCost(max(cost, list_cost), None, "incomplete")
        return UsageCost(cost, None, "usage")


def _aliases(raw: Mapping[Any, Any], models: Mapping[str, ModelPrices]) -> dict[str, str]:
    """``aliases:`` checked: each names a priced model; a model of the same name wins."""
    out = {}
    for alias, target in raw.items():
        if str(target) not in models:
            raise PriceError(
                f"price table alias {alias!r} points to {target!r}, which has no prices; "
                f"point it to one of: {', '.join(sorted(models))}"
            )
        if str(alias) not in models:
            out[str(alias)] = str(target)
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _model_from_dict(name: str, spec: Mapping[str, Any]) -> ModelPrices:
    from ..api.providers import PROVIDERS

    provider = str(spec.get("provider") or "openai")
    if provider not in PROVIDERS:
        raise ValueError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    per_image = {
        str(size): {str(q): float(p) for q, p in row.items()}
        for size, row in spec["per_image"].items()
    }
    custom = spec.get("custom_sizes")
    tokens = spec.get("tokens_per_million")
    qualities = tuple(spec.get("qualities") or sorted({q for r in per_image.values() for q in r}))
    return ModelPrices(
        name=name,
        qualities=qualities,
        per_image=per_image,
        max_n=int(spec.get("max_n", 10)),
        max_prompt_chars=spec.get("max_prompt_chars"),
        custom_sizes=CustomSizes(
            reference=str(custom["reference"]),
            multiple_of=int(custom.get("multiple_of", 16)),
            max_ratio=float(custom.get("max_ratio", 3)),
            max_long_edge=int(custom.get("max_long_edge", 3840)),
            max_short_edge=int(custom.get("max_short_edge", 2160)),
            min_edge=int(custom.get("min_edge", 16)),
        )
        if custom
        else None,
        tokens=TokenRates(
            text_input=float(tokens["text_input"]),
            image_input=float(tokens["image_input"]),
            image_output=float(tokens["image_output"]),
            text_output=float(tokens["text_output"]) if "text_output" in tokens else None,
        )
        if tokens
        else None,
        source=str(spec.get("source", "")),
        provider=provider,
    )
