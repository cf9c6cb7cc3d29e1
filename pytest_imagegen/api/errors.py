"""Exceptions raised by pytest-imagegen.

Every exception carries a message written for the person running the tests:
what went wrong, where, and what to do next. The pytest glue shows these
messages as they are, without an internal traceback.
"""

from __future__ import annotations

import shlex


def command(options: str, nodeid: str) -> str:
    """A command line to suggest, the node id quoted for any shell (``[`` globs in zsh)."""
    return f"`pytest {options} {shlex.quote(nodeid)}`"


class ImagegenError(Exception):
    """Base class: a problem the user can act on; shown without a traceback."""


class SuiteError(ImagegenError):
    """A prompt suite file is invalid (collection error)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(ImagegenError):
    """A pytest option, ini value or environment variable is invalid."""


class PriceError(ImagegenError):
    """A model, size or quality has no price: never guessed as $0."""


class MissingAPIKeyError(ImagegenError):
    """A request must be sent but no API key is set."""


class CostCeilingError(ImagegenError):
    """A case's list or actual cost is above its ``max_cost`` ceiling."""


class BudgetExceededError(ImagegenError):
    """A live request would take the session over ``--imagegen-budget``."""


#: what became of a request that did not give images, for cost accounting (SPEC §12)
ANSWERED = "answered"  # the server answered with an error status: not billed
NOT_SENT = "not sent"  # the request provably never reached the server: not billed
UNKNOWN = "unknown"  # timeout / dropped connection after sending: maybe billed
UNREADABLE = "unreadable"  # a 2xx answer whose body could not be used: billed

#: statuses worth retrying (after them the call is still open)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: transport errors raised before the request left the machine (never billed)
NOT_SENT_ERRORS = frozenset(
    {"ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"}
)


def transport_outcome(exc: BaseException) -> str:
    """``not sent`` for errors raised before the request left (any httpx flavour), else
    ``unknown``: the server may have received, and billed, it."""
    return NOT_SENT if type(exc).__name__ in NOT_SENT_ERRORS else UNKNOWN


class APIError(ImagegenError):
    """The images API call failed (after any retries).

    ``outcome`` says whether the provider may have billed it: ``unknown`` and
    ``unreadable`` are booked at list cost, ``answered`` and ``not sent`` at $0.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        attempts: int = 1,
        outcome: str = ANSWERED,
    ) -> None:
        self.status = status
        self.code = code
        self.error_type = error_type
        self.attempts = attempts
        self.outcome = outcome
        super().__init__(message)

    @property
    def maybe_billed(self) -> bool:
        return self.outcome in (UNKNOWN, UNREADABLE)

    def ledger_outcome(self) -> str:
        if self.outcome == UNKNOWN:
            return "unknown outcome, booked at list cost"
        if self.outcome == UNREADABLE:
            return "unreadable answer, booked at list cost"
        if self.outcome == NOT_SENT:
            return "not sent (connection failed)"
        return f"api error {self.status or ''}".strip()


class CassetteError(ImagegenError):
    """A cassette is missing, stale, corrupt or cannot be written."""


class ExpectationError(ImagegenError):
    """The images that came back do not match the case's ``expect`` block."""


class QualityError(ImagegenError):
    """An image does not meet the brief (``expect.text``, ``expect.judge``)."""


class DriftError(ImagegenError):
    """Images drifted from the accepted baseline beyond the thresholds."""


class DriftWarning(UserWarning):
    """Images drifted beyond the thresholds while ``--imagegen-drift=warn``."""
