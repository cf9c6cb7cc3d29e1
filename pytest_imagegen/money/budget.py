"""Session budget shared by every process of a run (pytest-xdist workers included).

The budget lives in one small JSON file guarded by a :class:`filelock.FileLock`.
A live request *reserves* its list cost before it is sent and *settles* to its
actual cost afterwards; the lock is held only for those two read-modify-write
steps, never while a request is in flight, so workers are not serialised.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .prices import format_usd

if TYPE_CHECKING:
    from filelock import BaseFileLock
from ..api.errors import BudgetExceededError

#: float noise allowed when comparing sums of dollar amounts
EPSILON = 1e-9


@dataclass(frozen=True)
class Reservation:
    amount: float
    nodeid: str


class SessionBudget:
    """A spending cap for one test session, safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, limit: float, directory: Path | None = None) -> SessionBudget:
        """A new budget file (the xdist controller creates it; workers open it by path)."""
        fd, name = tempfile.mkstemp(prefix="imagegen-budget-", suffix=".json", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"limit": limit, "reserved": 0.0, "spent": 0.0, "refused": 0}, handle)
        return cls(Path(name))

    def _lock(self) -> BaseFileLock:
        from ..api.locks import file_lock

        return file_lock(self.path)

    def _read(self) -> dict[str, float]:
        data: dict[str, float] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _write(self, state: dict[str, float]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)

    def snapshot(self) -> dict[str, float]:
        with self._lock():
            return self._read()

    def reserve(self, amount: float, nodeid: str) -> Reservation:
        """Reserve ``amount`` or raise :class:`BudgetExceededError` (nothing is sent then)."""
        with self._lock():
            state = self._read()
            committed = state["spent"] + state["reserved"]
            remaining = state["limit"] - committed
            if amount > remaining + EPSILON:
                state["refused"] = state.get("refused", 0) + 1
                self._write(state)
                raise BudgetExceededError(
                    f"session budget {format_usd(state['limit'])} would be exceeded: this request "
                    f"needs up to {format_usd(amount)} (its list cost) but only "
                    f"{format_usd(max(remaining, 0.0))} is left (spent {format_usd(state['spent'])}, "
                    f"in flight {format_usd(state['reserved'])}); no request was sent.\n"
                    "  what to do: raise --imagegen-budget, record fewer cases at a time "
                    "(select them with -k or node ids), or replay with --imagegen-record-mode=none"
                )
            state["reserved"] = state["reserved"] + amount
            self._write(state)
        return Reservation(amount, nodeid)

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace a reservation by what the request really cost (paid once, retries or not)."""
        with self._lock():
            state = self._read()
            state["reserved"] = max(0.0, state["reserved"] - reservation.amount)
            state["spent"] = state["spent"] + actual
            self._write(state)

    def remove(self) -> None:
        for path in (self.path, self.path.with_suffix(".tmp")):
            with contextlib.suppress(OSError):
                path.unlink()
