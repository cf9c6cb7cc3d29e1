"""The Responses API's ``image_generation`` tool (``POST /responses``): what a request asks
the tool for, and the images an answer holds (pure).

A Responses call is a chat model (the *mainline* model, billed by its ``usage``) that
may call the hosted image tool; the tool's images are billed apart, reported in
``tool_usage.image_gen`` when the provider gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..responses import GeneratedImage, Generation


def image_tool(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's ``image_generation`` tool settings, or ``None`` when it has none."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, Mapping) and tool.get("type") == "image_generation":
            return dict(tool)
    return None


def input_text(body: Mapping[str, Any]) -> str:
    """The text a Responses request sends (``instructions`` and ``input``, any shape)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, Mapping):
            if value.get("type") in ("input_image", "image_url"):
                return
            for key in ("text", "content"):
                if key in value:
                    walk(value[key])

    walk(body.get("instructions"))
    walk(body.get("input"))
    return " ".join(out)


def image_calls(payload: Any) -> list[Mapping[str, Any]]:
    """The ``image_generation_call`` items of a Responses answer."""
    output = payload.get("output") if isinstance(payload, Mapping) else None
    return [
        item
        for item in (output if isinstance(output, list) else [])
        if isinstance(item, Mapping) and item.get("type") == "image_generation_call"
    ]


def tool_usage(payload: Any) -> Mapping[str, Any] | None:
    """``tool_usage.image_gen`` of a Responses answer, when the provider reports it."""
    usage = payload.get("tool_usage") if isinstance(payload, Mapping) else None
    found = usage.get("image_gen") if isinstance(usage, Mapping) else None
    return found if isinstance(found, Mapping) else None


def read(
    payload: Mapping[str, Any],
    fetch: Callable[[int, Mapping[str, Any]], tuple[bytes, str]],
    status: int | None = None,
) -> Generation:
    images: list[GeneratedImage] = []
    for call in image_calls(payload):
        if call.get("result"):
            data, _ = fetch(len(images), {"b64_json": call["result"]})
            revised = call.get("revised_prompt")
            images.append(GeneratedImage(data, revised if isinstance(revised, str) else None,
                                         "image_generation_call"))  # fmt: skip
    usage = payload.get("usage")
    return Generation(
        images=images,
        usage=usage if isinstance(usage, dict) else None,
        meta={"tool_usage": tool_usage(payload)},
    )
