"""Spend ledger: one JSON line per live request, and the per-category rollup.

``<suites root>/.imagegen/ledger.jsonl`` grows by one line for each request
that left the machine (time, nodeid, suite, category, prompt sha256, request
parameters, list and actual cost, outcome). It is appended under a file lock,
so pytest-xdist workers can share it. It never holds an API key: only the
request's model, size, quality, n and pass-through params are written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .costs import format_usd

LEDGER_DIR = ".imagegen"
LEDGER_NAME = "ledger.jsonl"


def ledger_path(suites_root: Path) -> Path:
    return suites_root / LEDGER_DIR / LEDGER_NAME


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def entry(
    *,
    nodeid: str,
    suite: str | None,
    category: str | None,
    body: Mapping[str, Any],
    list_cost: float | None,
    actual_cost: float,
    outcome: str,
) -> dict[str, Any]:
    """One ledger line for a request body (the prompt is stored as its sha256 only)."""
    params = {k: v for k, v in body.items() if k != "prompt"}
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodeid": nodeid,
        "suite": suite,
        "category": category,
        "prompt_sha256": prompt_sha256(str(body.get("prompt", ""))),
        "params": params,
        "list_cost": list_cost,
        "actual_cost": actual_cost,
        "outcome": outcome,
    }


def append(path: Path, line: Mapping[str, Any], secrets: Iterable[str] = ()) -> None:
    """Append one JSON line under a lock (never a line containing a secret)."""
    from .locks import file_lock

    text = json.dumps(line, sort_keys=True, ensure_ascii=False)
    if any(s and s in text for s in secrets):
        return  # a key in a prompt or param: better no line than a leaked key
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path), path.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")


def read(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The ledger's entries and the numbers of lines that could not be read."""
    entries: list[dict[str, Any]] = []
    bad: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return entries, bad
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            bad.append(number)
            continue
        if isinstance(value, dict):
            entries.append(value)
        else:
            bad.append(number)
    return entries, bad


@dataclass
class Tally:
    prompts: set[str] = field(default_factory=set)
    requests: int = 0
    spend: float = 0.0

    def add(self, e: Mapping[str, Any]) -> None:
        self.prompts.add(str(e.get("prompt_sha256")))
        self.requests += 1
        self.spend += float(e.get("actual_cost") or 0.0)

    @property
    def iterations(self) -> int:
        return len(self.prompts)


def rollup(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Tally]]:
    """category -> nodeid -> tally (``"*"`` holds the category total)."""
    out: dict[str, dict[str, Tally]] = {}
    for e in entries:
        category = str(e.get("category") or "(no category)")
        cases = out.setdefault(category, {"*": Tally()})
        cases["*"].add(e)
        cases.setdefault(str(e.get("nodeid")), Tally()).add(e)
    return out


def render(entries: list[dict[str, Any]]) -> list[str]:
    """The ``--imagegen-ledger`` table: per category, then per case."""
    if not entries:
        return ["no live requests recorded in the ledger yet"]
    table = rollup(entries)
    width = max(len(n) for cases in table.values() for n in cases) + 2
    lines = [f"{'category / case':<{width}} {'iterations':>10} {'requests':>9} {'spend':>10}"]
    total = Tally()
    for category in sorted(table):
        cases = table[category]
        t = cases["*"]
        lines.append(
            f"{category:<{width}} {t.iterations:>10} {t.requests:>9} {format_usd(t.spend):>10}"
        )
        for nodeid in sorted(k for k in cases if k != "*"):
            c = cases[nodeid]
            lines.append(
                f"  {nodeid:<{width - 2}} {c.iterations:>10} {c.requests:>9} "
                f"{format_usd(c.spend):>10}"
            )
    for e in entries:
        total.add(e)
    lines.append(
        f"{'total':<{width}} {total.iterations:>10} {total.requests:>9} "
        f"{format_usd(total.spend):>10}"
    )
    return lines
