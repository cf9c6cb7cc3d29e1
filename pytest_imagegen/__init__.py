"""pytest-imagegen: prompt suites, cassettes, cost ceilings and visual drift for image APIs.

The pytest plugin registers itself (entry point ``imagegen``); this package
exports the pieces a test author uses directly:

* :class:`Imagegen`: the ``imagegen`` fixture's type (``generate``, ``assert_no_drift``);
* :class:`ImageResult` and :class:`GeneratedImage`: what ``generate`` returns;
* the exceptions (:class:`ImagegenError` and its subclasses) and :class:`DriftWarning`;
* :class:`PriceTable` to price requests the way the plugin does;
* :class:`FakeImagesServer`: the OpenAI-compatible fake server, for your own tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api.errors import (
    APIError,
    BudgetExceededError,
    CassetteError,
    ConfigError,
    CostCeilingError,
    DriftError,
    DriftWarning,
    ExpectationError,
    ImagegenError,
    MissingAPIKeyError,
    PriceError,
    SuiteError,
)
from .money.prices import PriceTable
from .pyapi.fixture import GeneratedImage, Imagegen, ImageResult

if TYPE_CHECKING:
    from .fakeserver import FakeImagesServer

__all__ = [
    "APIError",
    "BudgetExceededError",
    "CassetteError",
    "ConfigError",
    "CostCeilingError",
    "DriftError",
    "DriftWarning",
    "ExpectationError",
    "FakeImagesServer",
    "GeneratedImage",
    "ImageResult",
    "Imagegen",
    "ImagegenError",
    "MissingAPIKeyError",
    "PriceError",
    "PriceTable",
    "SuiteError",
]


def __getattr__(name: str) -> Any:
    if name == "FakeImagesServer":  # imports numpy: only when asked for
        from .fakeserver import FakeImagesServer

        return FakeImagesServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
