"""The paid-call pipeline: budget reservation and settlement, the ledger line, ceilings (SPEC §12).

Every live request (an image call, a judge call) goes through :func:`paid_request`
(or, for a test's own code, :func:`book` directly): its list cost is reserved in
the session budget before anything is sent, and afterwards the reservation
settles to what the request cost and one ledger line is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import APIError, CostCeilingError
from .prices import format_usd

if TYPE_CHECKING:
    from .budget import Reservation
    from .context import RunContext


@dataclass
class Charge:
    """What one live request cost; set ``actual`` once the response is in."""

    actual: float | None = None
    attempts: int = 1


@contextlib.contextmanager
def paid_request(
    ctx: RunContext,
    *,
    nodeid: str,
    suite: str | None,
    category: str | None,
    body: Mapping[str, Any],
    list_cost: float,
    ledger_root: Path,
    kind: str = "image",
) -> Iterator[Charge]:
    """Budget reservation and ledger line around one live request (retries included).

    The list cost is reserved before anything is sent (``BudgetExceededError``
    when it does not fit); afterwards the reservation settles to the actual
    cost, or to nothing when the API refused the request, or to the list cost
    when the outcome is unknown (timeouts, interrupts): the safe side.
    """
    reservation = ctx.budget.reserve(list_cost, nodeid) if ctx.budget else None
    charge = Charge()
    outcome = "ok"
    try:
        yield charge
    except APIError as exc:
        outcome = exc.ledger_outcome()
        charge.attempts = exc.attempts
        if charge.actual is None and not exc.maybe_billed:
            charge.actual = 0.0  # answered with an error, or never sent: not billed
        raise
    except BaseException:
        outcome = "unknown outcome, booked at list cost"  # e.g. interrupted mid-request
        raise
    finally:
        if charge.actual is None:
            charge.actual = list_cost
        book(
            ctx,
            reservation,
            charge.actual,
            outcome,
            nodeid=nodeid,
            suite=suite,
            category=category,
            body=body,
            list_cost=list_cost,
            ledger_root=ledger_root,
            attempts=charge.attempts,
            kind=kind,
        )


def book(
    ctx: RunContext,
    reservation: Reservation | None,
    actual: float,
    outcome: str,
    *,
    nodeid: str,
    suite: str | None,
    category: str | None,
    body: Mapping[str, Any],
    list_cost: float,
    ledger_root: Path,
    attempts: int = 1,
    kind: str = "image",
) -> None:
    """After a live request: settle its budget reservation and write its ledger line."""
    from . import ledger

    if reservation is not None and ctx.budget is not None:
        ctx.budget.settle(reservation, actual)
    line = ledger.entry(
        nodeid=nodeid,
        suite=suite,
        category=category,
        body=body,
        list_cost=list_cost,
        actual_cost=actual,
        outcome=outcome,
        server="fake" if ctx.settings.fake_server else "live",
        attempts=attempts,
        kind=kind,
    )
    ledger.append(ledger.ledger_path(ledger_root), line, ctx.redactor)


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
