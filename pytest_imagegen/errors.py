"""Exceptions raised by pytest-imagegen.

Every exception carries a message written for the person running the tests:
what went wrong, where, and what to do next. The pytest glue shows these
messages as they are, without an internal traceback.
"""

from __future__ import annotations


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


class APIError(ImagegenError):
    """The images API answered with an error (after any retries)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.code = code
        self.error_type = error_type
        self.attempts = attempts
        super().__init__(message)


class CassetteError(ImagegenError):
    """A cassette is missing, stale, corrupt or cannot be written."""


class ExpectationError(ImagegenError):
    """The images that came back do not match the case's ``expect`` block."""


class DriftError(ImagegenError):
    """Images drifted from the accepted baseline beyond the thresholds."""


class DriftWarning(UserWarning):
    """Images drifted beyond the thresholds while ``--imagegen-drift=warn``."""
