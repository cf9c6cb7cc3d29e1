"""Request parameters a provider takes, with their values and ranges (pure).

``problems(provider, endpoint, params, model=...)`` lists what is wrong with a
request's extra parameters (a suite's ``params:``) as ``(key, message)``
pairs: an unknown key (with a "did you mean"), a value outside its choices or
range, a parameter the model or endpoint does not take, and combinations the
API refuses. Case fields (``model``, ``prompt``, ``n``, ``size``,
``quality``) are checked elsewhere and skipped here; fields a gateway adds go
under ``extra_params:``, which nobody checks.

The OpenAI Images API rules follow the openai-python SDK's
``ImageGenerateParams`` and ``ImageEditParams`` (checked against openai
1.76 … 3.x, 2026-11): GPT image models (``gpt-image-*``,
``chatgpt-image-*``) take background, moderation, output_format,
output_compression, stream and partial_images; DALL·E models take
response_format and (dall-e-3) style. A model this module does not know
(a gateway's own) gets the key, value and combination checks, not the
per-model ones. ``azure`` takes the OpenAI parameters (Azure OpenAI serves the
same models behind deployments). ``gemini`` takes ``generateContent``'s generation
settings (``responseModalities``, ``temperature``, ``topP``, ``topK``, ``seed``,
``maxOutputTokens``, ``thinkingConfig``, ``imageConfig``; checked against the model's
aspect ratios and image sizes and against the case's ``size``, which sets
``imageConfig`` by itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .paramsgemini import gemini_problems
from .paramtext import CASE_FIELDS, EXTRA_HINT, did_you_mean

Endpoint = Literal["generations", "edits"]
Problem = tuple[str, str]

GPT, DALLE3, DALLE2 = "gpt-image", "dall-e-3", "dall-e-2"
BOTH: tuple[Endpoint, ...] = ("generations", "edits")


@dataclass(frozen=True)
class Param:
    """One request parameter: its type, allowed values, endpoints and model families."""

    name: str
    kind: Literal["choice", "int", "bool", "str"]
    choices: tuple[str, ...] = ()
    endpoints: tuple[Endpoint, ...] = BOTH
    low: int = 0
    high: int = 0
    families: tuple[str, ...] = (GPT,)

    def value_problem(self, value: Any) -> str | None:
        if value is None:  # JSON null: the API's default
            return None
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return None
            hint = did_you_mean(value.lower(), self.choices) if isinstance(value, str) else ""
            return (
                f"{value!r} is not a value of {self.name}{hint}; allowed: {', '.join(self.choices)}"
            )
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and self.low <= value <= self.high:
                return None
            return (
                f"{self.name} must be a whole number from {self.low} to {self.high}, got {value!r}"
            )
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"{self.name} must be true or false"
        if isinstance(value, str) and value:
            return None
        return f"{self.name} must be a non-empty string"


OPENAI_PARAMS = {
    p.name: p
    for p in (
        Param("background", "choice", ("transparent", "opaque", "auto")),
        Param("moderation", "choice", ("low", "auto"), ("generations",)),
        Param("output_format", "choice", ("png", "jpeg", "webp")),
        Param("output_compression", "int", low=0, high=100),
        Param("stream", "bool"),
        Param("partial_images", "int", low=0, high=3),
        Param("input_fidelity", "choice", ("high", "low"), ("edits",)),
        Param("response_format", "choice", ("url", "b64_json"), families=(DALLE2, DALLE3)),
        Param("style", "choice", ("vivid", "natural"), ("generations",), families=(DALLE3,)),
        Param("user", "str", families=(GPT, DALLE2, DALLE3)),
        Param("safety_identifier", "str", families=(GPT, DALLE2, DALLE3)),
    )
}
#: why a family does not take a parameter, when there is more to say than "remove it"
WHY_NOT = {
    "response_format": "they always return base64 images",
    "style": "describe the style in the prompt instead",
}
LABELS = {GPT: "GPT image", DALLE3: "dall-e-3", DALLE2: "dall-e-2"}
GPT_IMAGE_2 = re.compile(r"^gpt-image-2(-\d{4}-\d{2}-\d{2})?$")


def family(model: str | None) -> str | None:
    """``gpt-image``, ``dall-e-3``, ``dall-e-2`` by the model name, else ``None`` (unknown)."""
    if not model:
        return None
    if model.startswith(("gpt-image-", "chatgpt-image-")):
        return GPT
    for name in (DALLE3, DALLE2):
        if model == name or model.startswith(name + "-"):
            return name
    return None


def problems(
    provider: str,
    endpoint: Endpoint,
    params: Mapping[str, Any],
    model: str | None = None,
    *,
    size: str | None = None,
) -> list[Problem]:
    """What is wrong with ``params`` for ``provider``'s ``endpoint`` and ``model`` (``size``:
    the case's, for the providers where a parameter restates it)."""
    if provider == "gemini":
        return gemini_problems(params, model, size)
    check = PROVIDERS.get(provider)
    return check(endpoint, params, model) if check else []


def _openai(endpoint: Endpoint, params: Mapping[str, Any], model: str | None) -> list[Problem]:
    fam = family(model)
    allowed = [
        p.name
        for p in OPENAI_PARAMS.values()
        if endpoint in p.endpoints and (fam is None or fam in p.families)
    ]
    out: list[Problem] = []
    for key, value in params.items():
        key = str(key)
        if key in CASE_FIELDS:
            continue
        param = OPENAI_PARAMS.get(key)
        if param is None:
            out.append((key, f"unknown parameter {key!r}{did_you_mean(key, allowed)}; "
                        f"allowed: {', '.join(allowed)}; {EXTRA_HINT}"))  # fmt: skip
        elif endpoint not in param.endpoints:
            where = "edits (cases with `image:`)" if "edits" in param.endpoints else "generations"
            out.append((key, f"{key} is only taken by {where}; remove it"))
        elif fam is not None and fam not in param.families:
            why = WHY_NOT.get(key, f"only {' and '.join(param.families)} take it")
            out.append((key, f"{LABELS[fam]} models do not take {key} ({why}); remove it"))
        else:
            problem = param.value_problem(value)
            if problem:
                out.append((key, problem))
    if not out:
        out.extend(_combinations(params, model))
    return out


def _combinations(params: Mapping[str, Any], model: str | None) -> list[Problem]:
    """Rules between parameters (the API refuses these requests with a 400)."""
    out: list[Problem] = []
    fmt = params.get("output_format") or "png"
    if params.get("output_compression") is not None and fmt not in ("jpeg", "webp"):
        out.append(("output_compression", f"output_compression only applies to jpeg and webp, "
                    f"but output_format is {fmt}; set `output_format: jpeg` (or webp) or remove "
                    "output_compression"))  # fmt: skip
    if params.get("background") == "transparent" and fmt not in ("png", "webp"):
        out.append(("background", f"a transparent background needs output_format png or webp, "
                    f"got {fmt}; set `output_format: png` (or webp)"))  # fmt: skip
    if params.get("partial_images") is not None and params.get("stream") is not True:
        out.append(("partial_images", "partial_images is for streamed responses; add "
                    "`stream: true` or remove partial_images"))  # fmt: skip
    fidelity = params.get("input_fidelity")
    if fidelity is not None and model and GPT_IMAGE_2.match(model):
        out.append(("input_fidelity", f"{model} always uses high input fidelity and does not "
                    "take input_fidelity; remove it"))  # fmt: skip
    elif fidelity == "high" and model and model.startswith("gpt-image-1-mini"):
        out.append(("input_fidelity", f"{model} takes only `input_fidelity: low`"))
    return out


PROVIDERS: dict[str, Callable[[Endpoint, Mapping[str, Any], str | None], list[Problem]]] = {
    "openai": _openai,
    "azure": _openai,  # Azure OpenAI serves OpenAI's models: the same parameters
}
