"""How many cases a suite file may expand to, counted before anything is expanded."""

from __future__ import annotations

import math
from typing import Any

from ..api.errors import SuiteError
from .yamlfile import LineDict, Problems, line_of

#: cases one suite file may hold once its matrices are expanded: each is a pytest item held
#: in memory from collection on (8 axes of 10 values, a 409-byte file, would be 10**8 of them)
MAX_CASES = 10_000


def _matrix_axes(case: Any) -> list[tuple[str, int]]:
    """(field, number of values) of each axis of a case's matrix, as written (unchecked)."""
    matrix = case.get("matrix") if isinstance(case, LineDict) else None
    if not isinstance(matrix, LineDict):
        return []
    return [(str(k), len(v)) for k, v in matrix.items() if isinstance(v, list) and v]


def refuse_too_many(problems: Problems, raw: LineDict, cases: list[Any]) -> None:
    """Count the cases the file expands to before expanding any (multiplying the axes'
    lengths), and refuse a file beyond :data:`MAX_CASES`: a short file could otherwise
    ask for millions of pytest items and exhaust the memory at collection."""
    counts: list[tuple[int, str]] = []
    over = False
    for index, case in enumerate(cases):
        axes = _matrix_axes(case)
        count = math.prod(n for _, n in axes)
        cid = case.get("id") if isinstance(case, LineDict) else None
        cid = cid if isinstance(cid, str) else f"#{index + 1}"
        counts.append((count, cid))
        if count > MAX_CASES:
            over = True
            sizes = " x ".join(str(n) for _, n in axes)
            problems.add(
                line_of(case, "matrix"), cid, "matrix",
                f"expands to {count:,} cases ({sizes}: one per combination of "
                f"{', '.join(k for k, _ in axes)}); at most {MAX_CASES:,} cases per suite "
                "file: split the case or the file, or vary fewer fields",
            )  # fmt: skip
    if over:
        raise SuiteError(problems.items)
    total = sum(count for count, _ in counts)
    if total > MAX_CASES:
        largest = sorted(counts, key=lambda c: -c[0])[:3]
        shown = ", ".join(f"{cid!r} {count:,}" for count, cid in largest)
        problems.add(
            line_of(raw, "cases"), None, "cases",
            f"the file expands to {total:,} cases (the largest: {shown}); at most "
            f"{MAX_CASES:,} cases per suite file: split the file, or vary fewer fields",
        )  # fmt: skip
        raise SuiteError(problems.items)
