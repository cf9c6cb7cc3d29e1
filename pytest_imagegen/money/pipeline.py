"""The paid-call pipeline: every request that can cost money goes through one :class:`PaidCall`.

preflight (ceiling, no key in the request) → budget reservation → [limiter slot →
send with one deadline and a size cap: the client] → book by outcome → (the
caller keeps the paid answer and writes the cassette). The rules (SPEC §12):

* a 2xx answer books its actual cost from ``usage`` (list cost when usage is
  missing or unreadable; the higher of list and what the total implies when it is
  incomplete); an error answer and a request never sent book $0;
* an attempt whose outcome is unknown (timeout, drop, deadline, size cap,
  interrupt after sending) may have been billed: it is booked at list cost at
  once, and a retry needs a fresh reservation (no room: no retry);
* one logical call = one ledger line, one list cost in the reports, whatever the
  retries; its ``booked`` figure is the one figure of spend everywhere.

Suite cases, the concurrent prefetch, judge calls and the fixture drive a call
through :class:`~pytest_imagegen.api.client.ImagesClient` (it calls the hooks);
a test's own SDK calls are driven by the transport guard, which calls the same
hooks from what it sees.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import (
    UNKNOWN,
    UNREADABLE,
    APIError,
    BudgetExceededError,
    CassetteError,
    CostCeilingError,
)
from .prices import format_usd

if TYPE_CHECKING:
    from .budget import Reservation
    from .context import RunContext

UNKNOWN_OUTCOME = "unknown outcome, booked at list cost"


@dataclass(eq=False)
class PaidCall:
    """One logical paid call: its reservations, what was booked, its ledger line."""

    ctx: RunContext
    nodeid: str
    suite: str | None
    category: str | None
    ledger_body: Mapping[str, Any]  # what the ledger keeps of the request
    list_cost: float
    ledger_root: Path
    kind: str = "image"  # or "judge"
    price_key: str | None = None  # "model size quality": calibrates the budget's reservations
    attempts: int = 0
    unknown_attempts: int = 0
    booked: float = 0.0  # every figure of spend for this call
    in_flight: bool = False
    sent: bool = False  # an attempt left the machine (only then is there a ledger line)
    closed: bool = False
    outcome: str = ""
    last: str = "not sent (connection failed)"  # what the last failed attempt was
    reservation: Reservation | None = None
    notes: list[str] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- the client's hooks (api.client.AttemptHooks)
    def stopped(self) -> bool:
        """The session is stopping (Ctrl-C) or this call was booked already."""
        return self.closed or self.ctx.stopping

    def begin(self, attempt: int) -> None:
        """Before an attempt: hold a reservation (a fresh one after an unknown outcome).
        Waiting for room (another request's bill calibrating its setting) ends at Ctrl-C."""
        if self.stopped():
            raise KeyboardInterrupt  # the session is stopping: nothing more is sent
        budget = self.ctx.budget
        if budget is not None and self.reservation is None:
            try:
                reservation = budget.reserve(
                    self.list_cost, self.nodeid, self.price_key, cancelled=self.stopped
                )
            except BudgetExceededError as exc:
                if attempt > 1:
                    raise BudgetExceededError(
                        f"the retry of {self.nodeid}'s request was not sent: attempt "
                        f"{attempt - 1} timed out or was cut off after it was sent, so it "
                        f"may have been billed and was booked at its list cost "
                        f"{format_usd(self.list_cost)}; {exc}"
                    ) from None
                raise
            with self._lock:
                if self.closed:  # Ctrl-C while waiting: give the room back
                    budget.settle(reservation, 0.0)
                    raise KeyboardInterrupt
                self.reservation = reservation
        self.attempts = attempt

    def sending(self) -> None:
        """The attempt leaves now (after its limiter slot): from here on it may be billed."""
        with self._lock:
            if self.stopped():
                raise KeyboardInterrupt
            self.in_flight = self.sent = True

    def unknown(self, why: str = "") -> None:
        """The attempt was sent and gave no answer: booked at list cost now."""
        with self._lock:
            if self.closed or not self.in_flight:
                return
            self.in_flight = False
            self.unknown_attempts += 1
            self.booked += self.list_cost
            if self.reservation is not None and self.ctx.budget is not None:
                self.ctx.budget.settle(self.reservation, self.list_cost)
                self.reservation = None

    def answered(self, status: int) -> None:
        """An error answer (``0``: never sent): not billed; the reservation is kept for a
        retry."""
        with self._lock:
            self.in_flight = False
            self.last = f"api error {status}" if status else "not sent (connection failed)"

    # -- the end of the call
    def close(self, actual: float | None, outcome: str, *, calibrate: bool = False) -> float:
        """Book the call's end (``actual`` of a 2xx answer, else nothing more) and write its
        ledger line; returns everything booked for the call. Closing twice is a no-op."""
        with self._lock:
            if self.closed:
                return self.booked
            self.closed = True
            final = actual or 0.0
            if self.in_flight and actual is None:  # cut off mid-request: maybe billed
                final = max(final, self.list_cost)
                self.unknown_attempts += 1
                outcome = UNKNOWN_OUTCOME
            self.in_flight = False
            self.booked += final
            budget = self.ctx.budget
            if budget is not None and self.reservation is not None:
                budget.settle(self.reservation, final, observed=final if calibrate else None)
                self.reservation = None
            if self.unknown_attempts and outcome == "ok":
                outcome = f"ok after {self.unknown_attempts} attempt(s) of unknown outcome"
            elif self.unknown_attempts and not outcome.startswith("unknown"):
                outcome = f"{UNKNOWN_OUTCOME} ({self.unknown_attempts} attempt(s)); then {outcome}"
            self.outcome = outcome or UNKNOWN_OUTCOME
            if self.sent:  # a request never sent (budget, Ctrl-C while waiting) has no line
                self._ledger()
            return self.booked

    def abandon(self) -> float:
        """Ctrl-C: the session stops; a request in flight is booked as an unknown outcome."""
        return self.close(None, "interrupted" if not self.in_flight else UNKNOWN_OUTCOME)

    def _ledger(self) -> None:
        from . import ledger

        line = ledger.entry(
            nodeid=self.nodeid,
            suite=self.suite,
            category=self.category,
            body=self.ledger_body,
            list_cost=self.list_cost,
            actual_cost=round(self.booked, 6),
            outcome=self.outcome,
            server="fake" if self.ctx.settings.fake_server else "live",
            attempts=max(self.attempts, 1),
            kind=self.kind,
        )
        ledger.append(ledger.ledger_path(self.ledger_root), line, self.ctx.redactor)


def refuse_secrets(ctx: RunContext, body: Any, what: str) -> None:
    """A request that carries an API key (in the prompt, a parameter) is never sent: its
    cassette could not be written, so every run would pay for it again."""
    import json

    text = body if isinstance(body, str) else json.dumps(body, default=str)
    found = ctx.redactor.find(text)
    if found:
        raise CassetteError(
            f"{what} was not sent: its body contains {found}, which must never be written to "
            "a cassette; take the key out of the prompt and parameters (it belongs only in "
            "the environment variable)"
        )


@contextlib.contextmanager
def paid_call(
    ctx: RunContext,
    *,
    nodeid: str,
    suite: str | None,
    category: str | None,
    body: Mapping[str, Any],
    list_cost: float,
    ledger_root: Path,
    kind: str = "image",
    price_key: str | None = None,
) -> Iterator[PaidCall]:
    """A :class:`PaidCall` around one logical request driven by our client.

    The caller sets the end with ``call.close(actual, "ok", calibrate=...)`` after a 2xx
    answer; otherwise the exit books by outcome: an :class:`APIError` by what it says
    (answered, not sent, unknown, unreadable), anything else (an interrupt) as unknown
    when an attempt was in flight.
    """
    refuse_secrets(ctx, body, f"the {kind} request of {nodeid}")
    call = PaidCall(
        ctx,
        nodeid=nodeid,
        suite=suite,
        category=category,
        ledger_body=body,
        list_cost=list_cost,
        ledger_root=ledger_root,
        kind=kind,
        price_key=price_key,
    )
    ctx.track(call)
    try:
        yield call
    except APIError as exc:
        if ctx.stopping:  # ended while the session stops: its test will not report it
            ctx.interrupted.append(call)
        call.attempts = max(call.attempts, exc.attempts)
        if exc.outcome == UNREADABLE:  # a 2xx answer we could not use: billed
            call.in_flight = False
            call.close(call.list_cost, exc.ledger_outcome())
        elif exc.outcome == UNKNOWN:  # each such attempt was booked by the client's hook
            call.close(None, UNKNOWN_OUTCOME)
        else:
            call.in_flight = False
            call.close(None, exc.ledger_outcome())
        raise
    except BaseException as exc:
        call.close(None, "failed before an answer" if not call.in_flight else UNKNOWN_OUTCOME)
        if isinstance(exc, KeyboardInterrupt) and call.sent:
            ctx.interrupted.append(call)  # its test never reports: the session says it
        raise
    finally:
        if not call.closed:  # the caller did not book an end: the safe side
            call.close(None, "no answer recorded")
        ctx.untrack(call)


CEILING_FIX = "  what to do: lower n, size or quality, or raise max_cost for this case"


def list_ceiling_error(
    cost: float, max_cost: float, request: str, fix: str = CEILING_FIX
) -> CostCeilingError:
    return CostCeilingError(
        f"list cost {format_usd(cost)} is above max_cost {format_usd(max_cost)} "
        f"({request}); no request was sent.\n{fix}"
    )


def actual_ceiling_error(
    actual: float, max_cost: float, list_cost: float | None, fix: str = CEILING_FIX
) -> CostCeilingError:
    surprise = ""
    if list_cost is not None and actual > list_cost:
        surprise = (
            f"\n  the API billed more than the list cost {format_usd(list_cost)}: "
            "check the price table (ini imagegen_prices) against your provider's prices"
        )
    return CostCeilingError(
        f"actual cost {format_usd(actual)} (from the response's usage) is above max_cost "
        f"{format_usd(max_cost)}; the money is spent and the cassette is kept.{surprise}\n{fix}"
    )


def price_response(
    ctx: RunContext, model: str, usage: Any, list_cost: float, nodeid: str, notes: list[str]
) -> float:
    """Actual cost of a 2xx answer; unreadable usage is booked at list cost, with a note."""
    priced = ctx.prices.price_usage(model, usage, list_cost)
    if priced.problem:
        notes.append(
            f"{nodeid}: the response's usage cannot be priced ({priced.problem}); "
            f"booked at list cost {format_usd(list_cost)}"
        )
    return priced.cost


def overbilled_note(
    key: str, model: str, size: str, quality: str | None, n: int, list_cost: float, actual: float
) -> str | None:
    """When the provider billed above the price table: the figures, what the budget does
    about it, and the ``imagegen_prices`` override that makes the table right."""
    if actual <= list_cost * 1.0001 or list_cost <= 0:
        return None
    per_image = actual / max(n, 1)
    return (
        f"{key}: the provider billed {format_usd(actual)} where the price table says "
        f"{format_usd(list_cost)} ({actual / list_cost:.2f}x); later budget reservations of this "
        f"session use that ratio. To price it right, add to your imagegen_prices file: "
        f"models: {{{model}: {{per_image: {{{size}: {{{quality or 'auto'}: {per_image:.4f}}}}}}}}}"
    )


def overbilled_judge_note(model: str, list_cost: float, actual: float) -> str | None:
    """The same for a judge (chat) call."""
    if actual <= list_cost * 1.0001 or list_cost <= 0:
        return None
    return (
        f"judge {model}: the provider billed {format_usd(actual)} for one judged image where "
        f"the price table says {format_usd(list_cost)} ({actual / list_cost:.2f}x); later budget "
        "reservations of this session use that ratio. Check the model's prices under "
        "`chat_models:` in your imagegen_prices file"
    )


__all__ = [
    "PaidCall",
    "actual_ceiling_error",
    "list_ceiling_error",
    "overbilled_note",
    "paid_call",
    "price_response",
    "refuse_secrets",
]
