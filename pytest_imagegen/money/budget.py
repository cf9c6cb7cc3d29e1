"""Session budget shared by every process of a run (pytest-xdist workers included).

The budget lives in one small JSON file in the session's state folder
(``<rootdir>/.imagegen/sessions/<id>/budget.json``, created 0600) guarded by a
file lock. A live request *reserves* before it is sent and *settles* to what it
cost afterwards; the lock is held only for those read-modify-write steps, never
while a request is in flight, so workers are not serialised.

The budget is a hard cap against what was *billed*, not against the price
table: a reservation is the list cost times the ratio the provider actually
billed for the same model, size and quality in this session, and while that
ratio is not known yet (no answer for the key), a second request of the key
waits until the first one's bill has calibrated it (SPEC §12).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import BudgetExceededError
from ..api.locks import alive, create_private, replace_private
from .prices import format_usd

if TYPE_CHECKING:
    from filelock import BaseFileLock

#: float noise allowed when comparing sums of dollar amounts
EPSILON = 1e-9
POLL = 0.05
CALIBRATION_WAIT = 600.0  # at most this long for another request's bill


@dataclass(frozen=True)
class Reservation:
    amount: float
    nodeid: str
    id: str = ""
    key: str | None = None
    list_cost: float = 0.0


class SessionBudget:
    """A spending cap for one test session, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, limit: float, directory: Path) -> SessionBudget:
        """A new budget file (the xdist controller creates it; workers open it by path)."""
        path = directory / "budget.json"
        state = {"limit": limit, "reserved": 0.0, "spent": 0.0, "refused": 0}
        create_private(path, json.dumps({**state, "keys": {}, "inflight": []}))
        return cls(path)

    def _lock(self) -> BaseFileLock:
        from filelock import FileLock

        return FileLock(str(self.path.with_name(self.path.name + ".lock")), mode=0o600)

    def _read(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        data.setdefault("keys", {})
        data.setdefault("inflight", [])
        return data

    def _write(self, state: dict[str, Any]) -> None:
        replace_private(self.path, json.dumps(state))

    def snapshot(self) -> dict[str, Any]:
        with self._lock():
            return self._read()

    def ratio(self, key: str | None) -> float:
        """What the provider billed per dollar of list price for ``key`` (1.0 if unknown)."""
        if key is None:
            return 1.0
        return float(self.snapshot()["keys"].get(key, {}).get("ratio", 1.0))

    def reserve(
        self,
        list_cost: float,
        nodeid: str,
        key: str | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Reservation:
        """Reserve what this request may be billed, or raise :class:`BudgetExceededError`
        (nothing is sent then). Waits while another request of an uncalibrated ``key`` is
        in flight: its bill tells what this one will cost."""
        started = time.monotonic()
        while True:
            with self._lock():
                state = self._read()
                state["inflight"] = [e for e in state["inflight"] if alive(int(e.get("pid", 0)))]
                known = state["keys"].get(key or "", {})
                calibrating = key is not None and not known.get("calibrated")
                busy = calibrating and any(e.get("key") == key for e in state["inflight"])
                if not busy or time.monotonic() - started > CALIBRATION_WAIT:
                    return self._reserve(state, list_cost, nodeid, key, known)
            if cancelled is not None and cancelled():
                raise KeyboardInterrupt  # Ctrl-C while waiting: nothing is sent
            time.sleep(POLL)

    def _reserve(
        self,
        state: dict[str, Any],
        list_cost: float,
        nodeid: str,
        key: str | None,
        known: dict[str, Any],
    ) -> Reservation:
        ratio = max(1.0, float(known.get("ratio", 1.0)))
        amount = round(list_cost * ratio, 9)
        committed = state["spent"] + state["reserved"]
        remaining = state["limit"] - committed
        if amount > remaining + EPSILON:
            state["refused"] = state.get("refused", 0) + 1
            self._write(state)
            billed = (
                f" ({ratio:.2f}x its list cost {format_usd(list_cost)}: what the provider billed "
                "for the same setting in this session)"
                if ratio > 1.0
                else " (its list cost)"
            )
            raise BudgetExceededError(
                f"session budget {format_usd(state['limit'])} would be exceeded: this request "
                f"needs up to {format_usd(amount)}{billed} but only "
                f"{format_usd(max(remaining, 0.0))} is left (spent {format_usd(state['spent'])}, "
                f"in flight {format_usd(state['reserved'])}); no request was sent.\n"
                "  what to do: raise --imagegen-budget, record fewer cases at a time "
                "(select them with -k or node ids), or replay with --imagegen-record-mode=none"
            )
        reservation = Reservation(amount, nodeid, uuid.uuid4().hex, key, list_cost)
        state["reserved"] += amount
        state["inflight"].append(
            {"id": reservation.id, "pid": os.getpid(), "key": key, "amount": amount}
        )
        self._write(state)
        return reservation

    def settle(
        self, reservation: Reservation, actual: float, observed: float | None = None
    ) -> None:
        """Replace a reservation by what the request really cost; ``observed`` (a 2xx bill
        read from usage) calibrates later reservations of its key."""
        with self._lock():
            state = self._read()
            state["reserved"] = max(0.0, state["reserved"] - reservation.amount)
            state["spent"] += actual
            state["inflight"] = [e for e in state["inflight"] if e.get("id") != reservation.id]
            key = reservation.key
            if key is not None and observed is not None and reservation.list_cost > 0:
                entry = state["keys"].setdefault(key, {"ratio": 1.0})
                entry["ratio"] = max(float(entry["ratio"]), observed / reservation.list_cost)
                entry["calibrated"] = True
            self._write(state)

    def calibrations(self) -> dict[str, float]:
        """key -> billed/list ratio above 1 (for the summary)."""
        keys = self.snapshot()["keys"]
        return {k: float(v["ratio"]) for k, v in keys.items() if float(v.get("ratio", 1)) > 1.0001}

    def remove(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".lock")):
            path.unlink(missing_ok=True)
