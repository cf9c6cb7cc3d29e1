"""Spend ledger: one JSON line per live request, and the per-category rollup.

``<suites root>/.imagegen/ledger.jsonl`` grows by one line for each request
that left the machine (time, nodeid, suite, category, prompt sha256, request
parameters, list and actual cost, outcome, attempts, and ``server``:
``live``, or ``fake`` for the built-in fake server of ``--imagegen-fake-server``,
whose lines are shown apart and never count as spend). It is appended under a
file lock, so pytest-xdist workers can share it. Every line is masked for API
keys before it is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prices import format_usd

if TYPE_CHECKING:
    from ..api.redact import Redactor

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
    server: str = "live",
    attempts: int = 1,
    kind: str = "image",
) -> dict[str, Any]:
    """One ledger line for a request body (the prompt is stored as its sha256 only)."""
    from ..api.shape import request_params

    params = request_params(body)
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
        "attempts": attempts,
        "server": server,
        "kind": kind,  # "image", or "judge" for expect.judge calls
    }


def append(path: Path, line: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    """Append one JSON line under a lock, every API key in it masked."""
    from ..api.locks import file_lock

    data = redactor.mask_data(line) if redactor else line
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.is_symlink() or path.is_symlink():
        from ..api.errors import ImagegenError

        raise ImagegenError(
            f"the spend ledger {path} was not written: {path.parent.name}/ or the ledger is a "
            "symlink, and nothing is written outside the project; replace it by a real folder"
        )
    with file_lock(path, path.parent), path.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")


#: what a field of a ledger line may hold (a missing field is fine unless ``required``);
#: the ledger is a file anyone can edit, so a line that breaks this is skipped, not summed
FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "nodeid": ((str,), True),
    "actual_cost": ((int, float), True),
    "list_cost": ((int, float, type(None)), False),
    "time": ((str,), False),
    "suite": ((str, type(None)), False),
    "category": ((str, type(None)), False),
    "prompt_sha256": ((str,), False),
    "params": ((dict,), False),
    "outcome": ((str,), False),
    "attempts": ((int,), False),
    "server": ((str,), False),
    "kind": ((str,), False),
}


def read(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The ledger's entries and the numbers of the lines skipped: not JSON, not an object,
    a field of the wrong type, or a cost that is negative, not finite or not a number."""
    entries: list[dict[str, Any]] = []
    bad: list[int] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return entries, bad
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            bad.append(number)
            continue
        if well_formed(value):
            entries.append(value)
        else:
            bad.append(number)
    return entries, bad


def well_formed(value: Any) -> bool:
    """Whether a parsed ledger line has the fields :data:`FIELDS` allows, costs included."""
    if not isinstance(value, dict):
        return False
    for name, (types, required) in FIELDS.items():
        if name not in value:
            if required:
                return False
            continue
        field_value = value[name]
        if isinstance(field_value, bool) or not isinstance(field_value, types):
            return False
    return all(
        _is_cost(value.get(name))
        for name in ("list_cost", "actual_cost")
        if value.get(name) is not None
    )


def _is_cost(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def skipped(bad: list[int], shown: int = 10) -> str:
    """``skipped 3 malformed lines: 3, 7, 9`` (the first ``shown`` line numbers)."""
    numbers = ", ".join(map(str, bad[:shown])) + (", …" if len(bad) > shown else "")
    noun = "line" if len(bad) == 1 else "lines"
    return (
        f"skipped {len(bad)} malformed {noun}: {numbers} (not JSON, a field of the wrong type, "
        "or a cost that is negative or not a number); they are not counted"
    )


#: what a terminal would act on instead of showing: ESC sequences (CSI, OSC such as
#: hyperlinks and window titles, DCS/SOS/PM/APC strings, two-character ones) and their C1
#: forms; of the control characters left afterwards, line breaks and tabs become spaces and
#: the rest (C0, DEL, C1, and the bidirectional overrides that reorder what is shown) go
_ESCAPES = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
)
_SPACES = re.compile(r"[\t\n\v\f\r]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """``text`` with every terminal control sequence and control character removed (the
    ledger is untrusted: a nodeid must not set a hyperlink, a title or a colour)."""
    return _CONTROLS.sub("", _SPACES.sub(" ", _ESCAPES.sub("", text)))


@dataclass
class Tally:
    prompts: set[str] = field(default_factory=set)
    requests: int = 0
    spend: float = 0.0

    def add(self, e: Mapping[str, Any]) -> None:
        if e.get("kind") != "judge":  # a judge call is no new prompt version
            self.prompts.add(str(e.get("prompt_sha256")))
        self.requests += 1
        self.spend += money(e.get("actual_cost"))

    @property
    def iterations(self) -> int:
        return len(self.prompts)


def money(value: Any) -> float:
    """A USD amount read from the ledger (an untrusted file): bad or negative values
    count as 0."""
    return float(value) if _is_cost(value) else 0.0


def is_fake(e: Mapping[str, Any]) -> bool:
    return e.get("server") == "fake"


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
    """The ``--imagegen-ledger`` table: per category, then per case; fake-server traffic
    (``--imagegen-fake-server``) is listed apart and never added to spend."""
    entries = [_printable(e) for e in entries if well_formed(e)]
    live = [e for e in entries if not is_fake(e)]
    fake = [e for e in entries if is_fake(e)]
    lines = _table(live) if live else ["no live requests recorded in the ledger yet"]
    if fake:
        priced = sum(money(e.get("list_cost")) for e in fake)
        lines.append(
            f"fake server (--imagegen-fake-server, not spend): {len(fake)} requests, "
            f"{len({str(e.get('prompt_sha256')) for e in fake})} prompt versions, "
            f"list-price equivalent {format_usd(priced)}"
        )
    return lines


def _printable(e: Mapping[str, Any]) -> dict[str, Any]:
    """An entry whose strings are safe to print (see :func:`plain`)."""
    return {k: plain(v) if isinstance(v, str) else v for k, v in e.items()}


def _table(entries: list[dict[str, Any]]) -> list[str]:
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


def show(paths: list[Path], out: Any, shown: Callable[[Path], str]) -> None:
    """``--imagegen-ledger``: each existing ledger (or the first place one would be) as a
    table through pytest's terminal writer."""
    for path in [p for p in paths if p.is_file()] or paths[:1]:
        entries, bad = read(path)
        out.write_sep("-", f"imagegen ledger: {shown(path)}")
        for line in render(entries):
            out.write_line(line)
        if bad:
            out.write_line(skipped(bad), yellow=True)
