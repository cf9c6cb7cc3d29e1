"""What a suite case costs before anything is sent: its images, its judge, its ceiling."""

from __future__ import annotations

from ..money.context import RunContext
from .judging import config_for
from .spec import CaseSpec


def ceiling(ctx: RunContext, spec: CaseSpec) -> float | None:
    """The case's ``max_cost``, else ini ``imagegen_default_max_cost``."""
    return spec.max_cost if spec.max_cost is not None else ctx.settings.default_max_cost


def image_list_cost(ctx: RunContext, spec: CaseSpec) -> float:
    """The images request: generated images and prompt, and an edit's input images."""
    prices = ctx.prices
    cost = prices.list_cost(
        spec.model, spec.size, spec.quality, spec.n, spec.prompt, partial_images=partials(spec)
    ).total
    if spec.is_edit:
        files = [*spec.inputs, *([spec.mask] if spec.mask else [])]
        cost += prices.input_images_cost(spec.model, [(f.width, f.height) for f in files])
    return round(cost, 6)


def partials(spec: CaseSpec) -> int:
    """Partial images a streamed case asks for per image (each is billed, SPEC §19)."""
    params = {**spec.params, **spec.extra_params}
    count = params.get("partial_images")
    if params.get("stream") is not True or isinstance(count, bool) or not isinstance(count, int):
        return 0
    return max(0, count)


def judge_list_cost(ctx: RunContext, spec: CaseSpec) -> float:
    """What judging every image of the case may cost (``expect.judge``), estimated high."""
    cfg = config_for(spec, ctx)
    return round(cfg.list_cost_per_image(ctx) * spec.n, 6) if cfg else 0.0


def list_cost(ctx: RunContext, spec: CaseSpec) -> float:
    """The case's preflight figure: the images and, with ``expect.judge``, the judge."""
    return round(image_list_cost(ctx, spec) + judge_list_cost(ctx, spec), 6)


def describe(spec: CaseSpec) -> str:
    quality = spec.quality or "auto"
    return f"{spec.model} {spec.size} quality={quality} n={spec.n}"
