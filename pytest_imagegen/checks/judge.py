"""A vision chat model as a judge (``expect.judge``): the request and reading its answer.

Pure but for Pillow: one ``POST {base}/chat/completions`` per image, the image
as a data URL downscaled to at most 512 px on its long edge, a system prompt
that asks for ``{"score": 0..1, "reason": "..."}`` through ``response_format``
(json_schema). Models that answer the JSON inside prose, or inside a code
fence, are understood too; anything else is an unreadable answer.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_EDGE = 512
MAX_OUTPUT_TOKENS = 200
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_MIN_SCORE = 0.7
SYSTEM_PROMPT = (
    "You review generated images for a product team. Score how well the image meets the "
    "rubric, from 0 (not at all) to 1 (fully), and say why in one short sentence. Answer "
    'with JSON only: {"score": <number 0..1>, "reason": "<sentence>"}.'
)
ANSWER_SCHEMA: dict[str, Any] = {
    "name": "judgement",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string"},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    },
}
_OBJECT = re.compile(r"\{.*\}", re.S)


@dataclass(frozen=True)
class Verdict:
    score: float
    reason: str

    def passes(self, min_score: float) -> bool:
        return self.score >= min_score - 1e-9


class UnreadableAnswer(ValueError):
    """The judge's answer has no usable ``score``."""


def data_url(image: bytes, max_edge: int = MAX_EDGE) -> str:
    """The image as a PNG data URL, downscaled so its long edge is at most ``max_edge``."""
    from PIL import Image

    from ..api.images import open_image

    with open_image(image, "an image to judge") as opened:
        picture = opened.convert("RGB")
    picture.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def prompt_chars(rubric: str) -> int:
    """Characters of text the judge reads besides the image (for the list cost)."""
    return len(SYSTEM_PROMPT) + len(rubric) + 40


def request_body(model: str, rubric: str, image_url: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": MAX_OUTPUT_TOKENS,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": ANSWER_SCHEMA},
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Rubric: {rubric}"},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            },
        ],
    }


def parse_answer(payload: Any) -> Verdict:
    """The verdict in a chat completion: JSON content, or JSON inside prose."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise UnreadableAnswer("the answer has no choices[0].message.content") from None
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    if not isinstance(content, str):
        raise UnreadableAnswer("the answer's content is not text")
    data: Any = None
    try:
        data = json.loads(content)
    except ValueError:
        found = _OBJECT.search(content)
        if found:
            try:
                data = json.loads(found.group(0))
            except ValueError:
                data = None
    if not isinstance(data, Mapping):
        raise UnreadableAnswer(f"no JSON object in the answer: {content[:120]!r}")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise UnreadableAnswer(f"score {score!r} is not a number from 0 to 1")
    return Verdict(float(score), str(data.get("reason") or "")[:500])
