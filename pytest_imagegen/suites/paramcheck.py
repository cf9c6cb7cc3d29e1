"""A case's ``params:`` (checked against the provider's parameters) and ``extra_params:``
(gateway fields, passed through unchecked): validated at collection, SPEC §19."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import params as api_params
from .spec import RESERVED_PARAMS
from .yamlfile import LineDict, Problems, line_of

#: the provider whose rules apply when the caller names none
PROVIDER = "openai"


def check_params(
    problems: Problems,
    case: LineDict,
    cid: str,
    v: Mapping[str, Any],
    model: str | None,
    endpoint: api_params.Endpoint,
    provider: str = PROVIDER,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, extra_params)`` of a case; every problem is added to ``problems``."""

    def add(mapping: Any, field: str, key: Any, message: str) -> None:
        lines = getattr(mapping, "key_lines", {})  # the key's own line, else the field's
        line = lines[key] if key in lines else line_of(case, field) if field in case else case.line
        problems.add(line, cid, field, message)

    checked = _mapping(add, v, "params", "{output_format: png}")
    extra = _mapping(add, v, "extra_params", "{seed: 42}")
    for field, mapping in (("params", checked), ("extra_params", extra)):
        for key in mapping:
            if key in RESERVED_PARAMS:
                add(mapping, field, key, f"{key!r} is a case field; set `{key}:` on the case, "
                    f"not in {field}")  # fmt: skip
    for key in extra:
        if key in checked:
            add(extra, "extra_params", key, f"{key!r} is in both params and extra_params; "
                "keep one (params, defaults' included, are checked; extra_params are sent as "
                "written)")  # fmt: skip
    size = v.get("size") if isinstance(v.get("size"), str) else None
    for key, message in api_params.problems(provider, endpoint, checked, model=model, size=size):
        add(checked, "params", key, message)
    return dict(checked), dict(extra)


def _mapping(add: Any, v: Mapping[str, Any], field: str, example: str) -> Mapping[str, Any]:
    value = v.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        add(None, field, None, f"must be a mapping of request fields, e.g. {example}")
        return {}
    return value
