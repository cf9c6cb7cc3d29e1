"""What a request of a test's own code costs, per route (SPEC §8, §19): the list cost
before it is sent (the ceiling), and the actual cost of its answer.

The guard (:mod:`.guard`) asks :func:`price` with the request's route
(:func:`pytest_imagegen.api.providers.classify`) and body, and :func:`actual` with
the answer. Routes:

* ``image`` on ``openai`` / ``azure``: the Images API (generations, edits; a streamed
  request with its partial images); an Azure deployment in the path is priced as
  the model ini ``imagegen_deployments`` maps it to;
* ``image`` on ``gemini``: ``generateContent`` (size from ``imageConfig``, usage from
  ``usageMetadata``);
* ``judge``: a chat call (a vision judge), priced by its text, images and output limit;
* ``responses``: a Responses API call: the mainline model's tokens plus the images of
  its ``image_generation`` tool (priced from the tool's size, quality and model).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.errors import CostCeilingError, PriceError
from ..api.providers import Route, gemini, sse, toolcall
from ..api.providers.read import answer_usage
from ..money.context import RunContext
from ..money.usage import UsageCost

DEFAULT_OUTPUT_LIMIT = 4096  # output tokens a chat or Responses call may write, if unset


@dataclass
class Priced:
    """A request as the pipeline sees it."""

    desc: dict[str, Any]  # as case fields: what is described, shown, ledgered, diffed
    list_cost: float
    model: str  # the priced model (an image model; the chat model of a judge call)
    summary: str  # for the ceiling's message
    ledger_body: dict[str, Any]
    price_key: str | None = None
    parts: dict[str, float] = field(default_factory=dict)  # responses: mainline, images


def price(
    ctx: RunContext, route: Route, body: Mapping[str, Any], edit_sizes: list[tuple[int, int]]
) -> Priced:
    """The list cost of a request (``ImagegenError`` when it cannot be priced)."""
    if route.kind == "judge":
        return _judge(ctx, body)
    if route.kind == "responses":
        return _responses(ctx, body)
    if route.provider == "gemini":
        return _gemini(ctx, route, body)
    return _images(ctx, route, body, edit_sizes)


def describe(route: Route | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded request body as case fields (for a stale cassette's changed fields)."""
    if route is not None and route.provider == "gemini":
        return gemini.describe(route.model or "", body)
    return dict(body)


def _model(route: Route, body: Mapping[str, Any]) -> str:
    model = route.model or body.get("model")  # an Azure deployment names the model
    if not isinstance(model, str) or not model:
        raise CostCeilingError(
            "images request without a model: pytest-imagegen cannot price it; pass model=... "
            "(e.g. gpt-image-2)"
        )
    return model


def summary(desc: Mapping[str, Any]) -> str:
    return (
        f"{desc.get('model')} {desc.get('size') or 'auto'} "
        f"quality={desc.get('quality') or 'auto'} n={desc.get('n') or 1}"
    )


def price_key(desc: Mapping[str, Any]) -> str:
    return (
        f"{desc.get('model')} {desc.get('size') or 'auto'} quality={desc.get('quality') or 'auto'}"
    )


def partials(body: Mapping[str, Any]) -> int:
    """Partial images per image of a streamed request (each is billed)."""
    count = body.get("partial_images")
    stream = body.get("stream") in (True, "true")
    if not stream or isinstance(count, bool):
        return 0
    with contextlib.suppress(TypeError, ValueError):
        return max(0, int(count or 0))
    return 0


def _images(
    ctx: RunContext, route: Route, body: Mapping[str, Any], edit_sizes: list[tuple[int, int]]
) -> Priced:
    model = _model(route, body)
    desc = dict(body)
    desc["model"] = model
    try:
        n = int(body.get("n") or 1)
        images = ctx.prices.list_cost(
            model, str(body.get("size") or "auto"), body.get("quality"), n,
            str(body.get("prompt") or ""), partial_images=partials(body),
        ).total  # fmt: skip
        inputs = ctx.prices.input_images_cost(model, edit_sizes)
    except (ValueError, TypeError) as exc:
        raise CostCeilingError(str(exc)) from None
    cost = round(images + inputs, 6)
    return Priced(desc, cost, model, summary(desc), desc, price_key(desc))


def _gemini(ctx: RunContext, route: Route, body: Mapping[str, Any]) -> Priced:
    model = _model(route, body)
    desc = gemini.describe(model, body)
    prices = ctx.prices
    cost = prices.list_cost(model, str(desc["size"]), None, int(desc["n"]), str(desc["prompt"]))
    total = cost.total
    inputs = int(desc.get("input_images") or 0)
    info = gemini.model_info(prices.model(model).name) or gemini.model_info(model)
    rates = prices.model(model).tokens
    if inputs and info is not None and rates is not None:
        tokens = inputs * info.input_image_tokens
        total += tokens * rates.image_input / 1e6 * prices.multiplier
    total = round(total, 6)
    return Priced(desc, total, model, summary(desc), desc, price_key(desc))


def _judge(ctx: RunContext, body: Mapping[str, Any]) -> Priced:
    model = str(body.get("model"))
    text, images, limit = chat_summary(body)
    cost = ctx.prices.chat_list_cost(model, images, len(text), limit)
    ledger = {"model": body.get("model"), "prompt": text, "images": len(images)}
    return Priced(dict(body), cost, model, f"{model} chat call", ledger, f"judge {model}")


def _responses(ctx: RunContext, body: Mapping[str, Any]) -> Priced:
    """The mainline model's tokens (text in, every output token it may write) and one image
    of the tool's model, size and quality (with its partial images when streamed)."""
    mainline = str(body.get("model") or "")
    text = toolcall.input_text(body)
    limit = body.get("max_output_tokens")
    limit = limit if isinstance(limit, int) and limit > 0 else DEFAULT_OUTPUT_LIMIT
    prices = ctx.prices
    try:
        chat = prices.chat_model(mainline)
    except PriceError:
        raise PriceError(
            f"Responses API call with model {mainline!r}: no price known for it as the mainline "
            f"model (known: {', '.join(sorted(prices.chat))}); add it under `chat_models:` in "
            "a price file named by the ini key `imagegen_prices`"
        ) from None
    main_cost = prices.chat_list_cost(chat.name, [], len(text), limit)
    tool = toolcall.image_tool(body)
    image_cost, image_model, size, quality = 0.0, None, None, None
    if tool is not None:
        size = str(tool.get("size") or "auto")
        quality = tool.get("quality")
        given = tool.get("model")
        image_model, image_cost = _tool_image(ctx, given, size, quality, partials(
            {"stream": body.get("stream"), "partial_images": tool.get("partial_images")}
        ))  # fmt: skip
    desc: dict[str, Any] = {
        "model": image_model or mainline,
        "prompt": text,
        "n": 1 if tool is not None else 0,
        "size": size or "none",
        "mainline_model": mainline,
    }
    if quality is not None:
        desc["quality"] = quality
    cost = round(main_cost + image_cost, 6)
    what = (
        f"{mainline} with the image_generation tool ({summary(desc)})"
        if tool is not None
        else f"{mainline} Responses call"
    )
    return Priced(
        desc, cost, image_model or mainline, what, desc,
        price_key(desc) if tool is not None else None,
        {"mainline": main_cost, "images": image_cost},
    )  # fmt: skip


def _tool_image(
    ctx: RunContext, given: Any, size: str, quality: Any, partial: int
) -> tuple[str, float]:
    """(the model the tool's image is priced as, its list cost). A tool that names no model
    uses the provider's default, which the price table may not know: the image is priced
    at the dearest GPT image model that has a price for its size and quality."""
    prices = ctx.prices
    names = [given] if isinstance(given, str) and given else [
        name for name, m in prices.models.items()
        if m.provider == "openai" and name.startswith("gpt-image-")
    ]  # fmt: skip
    best: tuple[float, str] | None = None
    problem = ""
    for name in names:
        try:
            cost = prices.list_cost(name, size, quality, 1, "", partial_images=partial).total
        except PriceError as exc:
            problem = str(exc)
            continue
        if best is None or cost > best[0]:
            best = (cost, name)
    if best is None:
        raise PriceError(f"the image_generation tool's image cannot be priced: {problem}")
    return best[1], best[0]


def actual(ctx: RunContext, route: Route, priced: Priced, content: bytes) -> tuple[UsageCost, Any]:
    """The actual cost of a 2xx answer, and the usage it was priced from."""
    prices = ctx.prices
    if route.kind == "judge":
        usage = answer_usage(content)
        return prices.judge_actual_cost(priced.model, usage, priced.list_cost), usage
    if route.kind == "responses":
        return _responses_actual(ctx, priced, content)
    usage = answer_usage(content)
    return prices.price_usage(priced.model, usage, priced.list_cost), usage


def _responses_actual(ctx: RunContext, priced: Priced, content: bytes) -> tuple[UsageCost, Any]:
    payload: Any = None
    text = content.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        if sse.looks_like_sse(text):  # a streamed call: its response.completed event
            for name, data in sse.events(text):
                if name == "response.completed" and isinstance(data, Mapping):
                    payload = data.get("response")
        else:
            payload = json.loads(text)
    if not isinstance(payload, Mapping):
        return UsageCost(priced.list_cost, "the Responses answer cannot be read"), None
    prices = ctx.prices
    mainline = str(priced.desc.get("mainline_model"))
    main_list, images_list = priced.parts.get("mainline", 0.0), priced.parts.get("images", 0.0)
    main = prices.judge_actual_cost(mainline, payload.get("usage"), main_list)
    calls = [c for c in toolcall.image_calls(payload) if c.get("result")]
    tool_usage = toolcall.tool_usage(payload)
    if tool_usage is not None and calls:
        images = prices.price_usage(priced.model, dict(tool_usage), images_list * len(calls))
    else:
        images = UsageCost(images_list * len(calls), None, "list")
    problem = main.problem or images.problem
    basis = "usage" if main.basis == images.basis == "usage" else "incomplete"
    usage = {"mainline": payload.get("usage"), "image_gen": tool_usage, "images": len(calls)}
    return UsageCost(round(main.cost + images.cost, 6), problem, basis), usage


# ------------------------------------------------------------------ chat calls


def chat_summary(
    body: Mapping[str, Any],
) -> tuple[str, list[tuple[int | None, int | None, str]], int]:
    """(the text of a chat request, each image it sends as (width, height, detail) — the
    size read from a data URL's header, ``None`` when given by URL — its output limit)."""
    texts, images = [], []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                detail = ref.get("detail") if isinstance(ref, dict) else part.get("detail")
                images.append((*_data_url_size(url), str(detail or "auto")))
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_OUTPUT_LIMIT
    return " ".join(texts), images, int(limit) if isinstance(limit, int) else DEFAULT_OUTPUT_LIMIT


def _data_url_size(url: Any) -> tuple[int | None, int | None]:
    """The pixel size of a ``data:image/...;base64,`` URL from its header, if it has one."""
    from PIL import Image

    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None, None
    try:
        text = url.split(",", 1)[1][:65536]
        head = base64.b64decode(text[: len(text) - len(text) % 4])
        with Image.open(io.BytesIO(head)) as image:
            width, height = image.size
            return int(width), int(height)
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        return None, None
