"""Reading suite YAML with line numbers, and the problem list every error message uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml


class LineDict(dict[Any, Any]):
    """A mapping that remembers the line of itself and of each key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    duplicate_keys: list[tuple[Any, int]]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicate_keys.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


#: values a suite may expand to (YAML aliases repeat values without repeating text: a
#: "billion laughs" file of a few hundred bytes would otherwise hang the run)
MAX_VALUES = 200_000


def expanded_size(data: Any, limit: int = MAX_VALUES) -> int:
    """How many values ``data`` holds once every alias is written out (stops past ``limit``)."""
    memo: dict[int, int] = {}

    def size(value: Any) -> int:
        key = id(value)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a value that contains itself is too large
        total = 1
        children = (
            [x for pair in value.items() for x in pair]
            if isinstance(value, dict)
            else value
            if isinstance(value, list)
            else ()
        )
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[key] = total
        return total

    return size(data)


def parse_yaml(text: str | bytes) -> tuple[Any, list[tuple[Any, int]]]:
    loader = _LineLoader(text)
    loader.duplicate_keys = []
    try:
        return loader.get_single_data(), loader.duplicate_keys
    finally:
        loader.dispose()


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Problems:
    def __init__(self, display: str) -> None:
        self.display = display
        self._items: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[str]:
        """Problems in file order (stable for problems on the same line)."""
        return [text for _, text in sorted(self._items, key=lambda item: item[0])]

    def add(self, line: int, case: str | None, fld: str | None, message: str) -> None:
        where = f"{self.display}:{line}"
        parts = [where]
        if case is not None:
            parts.append(f"case {case!r}")
        if fld is not None:
            parts.append(f"field {fld!r}")
        self._items.append((line, ": ".join(parts) + ": " + message))


def line_of(mapping: Any, key: Any = None, fallback: int = 1) -> int:
    if isinstance(mapping, LineDict):
        if key is not None and key in mapping.key_lines:
            return mapping.key_lines[key]
        return mapping.line
    return fallback


def check_keys(
    problems: Problems, mapping: LineDict, allowed: tuple[str, ...], case: str | None, what: str
) -> None:
    for key in mapping:
        if key not in allowed:
            problems.add(
                line_of(mapping, key),
                case,
                str(key),
                f"unknown key in {what}{did_you_mean(str(key), allowed)}; "
                f"allowed: {', '.join(allowed)}",
            )
