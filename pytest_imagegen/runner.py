"""Running one suite case: preflight cost ceiling, request (live or cassette), checks.

Plain Python, no pytest: the pytest item only calls :func:`run_case` and
turns its exceptions into readable failures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .costs import PriceTable, format_usd
from .errors import CassetteError, CostCeilingError
from .expectations import check_images
from .settings import Settings, find_api_key
from .suite import CaseSpec

if TYPE_CHECKING:
    from .client import Generation, ImagesClient


@dataclass
class CaseResult:
    """Everything the reports need about one case run (JSON-serialisable)."""

    nodeid: str
    suite: str
    category: str | None
    model: str
    size: str
    quality: str | None
    n: int
    list_cost: float | None = None
    actual_cost: float = 0.0  # money spent by this run (0 for a replay)
    max_cost: float | None = None
    cassette: str = "none"  # live | replayed | recorded | missing | stale | none
    ceiling: str | None = None  # "list" or "actual" when the ceiling failed the test
    attempts: int = 0
    outcome: str = "unknown"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunContext:
    """Per-session state shared by all cases of one process."""

    settings: Settings
    prices: PriceTable
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _clients: dict[str, ImagesClient] = field(default_factory=dict)

    def client(self) -> ImagesClient:
        """The images client for the current key (raises if no key is set)."""
        from .client import ImagesClient

        _, key = find_api_key(self.environ)
        if key not in self._clients:
            s = self.settings
            self._clients[key] = ImagesClient(
                s.base_url, key, timeout=s.timeout, max_retries=s.max_retries, backoff=s.backoff
            )
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def ceiling(self, spec: CaseSpec) -> float | None:
        return spec.max_cost if spec.max_cost is not None else self.settings.default_max_cost

    def list_cost(self, spec: CaseSpec) -> float:
        return self.prices.list_cost(spec.model, spec.size, spec.quality, spec.n, spec.prompt).total


def new_result(spec: CaseSpec, nodeid: str) -> CaseResult:
    return CaseResult(
        nodeid=nodeid,
        suite=spec.suite,
        category=spec.category,
        model=spec.model,
        size=spec.size,
        quality=spec.quality,
        n=spec.n,
    )


def preflight(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> None:
    """Price the case and refuse it before any request if it is over its ceiling."""
    result.list_cost = ctx.list_cost(spec)
    result.max_cost = ctx.ceiling(spec)
    if result.max_cost is not None and result.list_cost > result.max_cost:
        result.ceiling = "list"
        raise CostCeilingError(
            f"list cost {format_usd(result.list_cost)} is above max_cost "
            f"{format_usd(result.max_cost)} ({describe(spec)}); no request was sent.\n"
            "  what to do: lower n, size or quality, or raise max_cost for this case"
        )


def describe(spec: CaseSpec) -> str:
    quality = spec.quality or "auto"
    return f"{spec.model} {spec.size} quality={quality} n={spec.n}"


def fetch_live(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    if ctx.settings.record_mode == "none":
        result.cassette = "missing"
        raise CassetteError(
            f"no cassette for {result.nodeid}; record it with "
            f"`pytest --imagegen-record-mode=once {result.nodeid}` "
            f"(estimated cost {format_usd(result.list_cost or 0.0)})"
        )
    client = ctx.client()
    generation = client.generate(spec.request_body())
    result.cassette = "live"
    result.attempts = generation.attempts
    return generation


def settle(spec: CaseSpec, ctx: RunContext, result: CaseResult, generation: Generation) -> None:
    """Actual cost of a live call and the after-the-fact ceiling check."""
    result.actual_cost = ctx.prices.actual_cost(
        spec.model, generation.usage, result.list_cost or 0.0
    )
    if result.max_cost is not None and result.actual_cost > result.max_cost:
        result.ceiling = "actual"
        raise CostCeilingError(
            f"actual cost {format_usd(result.actual_cost)} (from the response's usage) is "
            f"above max_cost {format_usd(result.max_cost)}; the money is spent.\n"
            "  what to do: lower n, size or quality, or raise max_cost for this case"
        )


def run_case(spec: CaseSpec, ctx: RunContext, result: CaseResult) -> Generation:
    """Preflight, obtain the images, settle the cost and check expectations."""
    preflight(spec, ctx, result)
    generation = fetch_live(spec, ctx, result)
    settle(spec, ctx, result, generation)
    check_images(spec.expect, [image.data for image in generation.images])
    return generation
