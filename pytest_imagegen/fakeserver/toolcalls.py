"""The fake server's Responses API (``POST /v1/responses``) with the ``image_generation``
tool: a deterministic assistant that, given the tool, always calls it once.

The answer holds an ``image_generation_call`` output item (the image as base64 in
``result``) and a short message; ``usage`` bills the mainline chat model and
``tool_usage.image_gen`` the image (below the published list price, like the images
route).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from ..api.providers import toolcall
from ..api.shape import AUTO, parse_size


def _error(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}  # fmt: skip


def answer(server: Any, body: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict):
        return 400, _error("The request body must be a JSON object.", None, None)
    model = body.get("model")
    if not isinstance(model, str) or model not in server.catalog.chat:
        return 400, _error(f"The model '{model}' does not exist.", "model", "model_not_found")
    if body.get("stream"):
        return 400, _error("The fake server does not stream Responses; call it with "
                           "stream=False.", "stream", "unsupported_parameter")  # fmt: skip
    text = toolcall.input_text(body).strip()
    if not text:
        return 400, _error("Missing required parameter: 'input'.", "input",
                           "missing_required_parameter")  # fmt: skip
    tool = toolcall.image_tool(body)
    output: list[dict[str, Any]] = []
    image_in = image_out = 0
    if tool is not None:
        image_model = str(tool.get("model") or "gpt-image-2")
        size = str(tool.get("size") or AUTO)
        request = {"model": image_model, "prompt": text, "n": 1, "size": size}
        for key in ("quality", "background", "output_format", "output_compression", "moderation"):
            if tool.get(key) is not None:
                request[key] = tool[key]
        problem: tuple[int, dict[str, Any]] | None = server.validate(request)
        if problem:
            return problem
        generated = server.generate(request, "")
        item = generated["data"][0]
        output.append({
            "id": f"ig_{uuid.uuid4().hex[:24]}",
            "type": "image_generation_call",
            "status": "completed",
            "result": item["b64_json"],
            "revised_prompt": text,
            "size": generated.get("size") or (size if parse_size(size) else "1024x1024"),
            "quality": generated.get("quality"),
            "output_format": generated.get("output_format") or "png",
            "background": generated.get("background") or "opaque",
            "action": "generate",
        })  # fmt: skip
        used = generated.get("usage") or {}
        image_out = int(used.get("output_tokens") or 0)
        image_in = max(1, math.ceil(len(text) / 4))
    reply = "Here is the image." if tool is not None else f"You said: {text[:60]}"
    output.append({
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": reply, "annotations": []}],
    })  # fmt: skip
    input_tokens = max(1, math.ceil(len(text) / 4)) + 20
    output_tokens = 12 + (30 if tool is not None else 0)
    return 200, {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "tool_usage": {
            "image_gen": {
                "input_tokens": image_in,
                "input_tokens_details": {"image_tokens": 0, "text_tokens": image_in},
                "output_tokens": image_out,
                "output_tokens_details": {"image_tokens": image_out, "text_tokens": 0},
                "total_tokens": image_in + image_out,
            },
            "web_search": {"num_requests": 0},
        },
    }
