"""Image API calls made by a test's own code (httpx, httpx2, the openai SDK).

Inside a test marked ``@pytest.mark.imagegen`` (or using the ``imagegen``
fixture) every request goes through a vcrpy cassette, and requests to an
images endpoint also go through a :class:`Guard` first:

* the list cost is computed from the request body (model, size, quality, n,
  prompt) and checked against the ceiling before anything happens, replay
  included;
* a request the cassette cannot answer fails in ``none`` mode (no cassette /
  stale cassette, naming the changed fields and the cost to record); in
  record modes it reserves its list cost in the session budget, is sent,
  and settles to the actual cost from the response's ``usage``;
* every live images request is written to the spend ledger.

The transport methods of httpx and httpx2 (the HTTP library of openai ≥ 3)
are wrapped on top of vcrpy's own patches, so the guard sees each request
before vcrpy replays or records it. Guard errors are raised through
``abort`` (the pytest glue passes ``pytest.fail``), an exception the SDKs do
not catch and retry.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .budget import Reservation
from .costs import format_usd
from .errors import CassetteError, CostCeilingError, ImagegenError, MissingAPIKeyError
from .recording import canonical_json, diff_bodies, fingerprint, shown
from .runner import CaseResult, RunContext, actual_ceiling_error, book, list_ceiling_error

IMAGES_PATH = re.compile(r"/images/(generations|edits|variations)/?$")
MARKER_FIX = "  what to do: lower n, size or quality, or raise max_cost in @pytest.mark.imagegen(max_cost=...)"
REPLAY_KEY = "imagegen-replay"  # the placeholder key of the imagegen fixture's client
#: (module, class, method, is_async) of the transports to wrap
TRANSPORTS = (
    ("httpx", "HTTPTransport", "handle_request", False),
    ("httpx", "AsyncHTTPTransport", "handle_async_request", True),
    ("httpx2", "HTTPTransport", "handle_request", False),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request", True),
)


def is_images_request(method: str, path: str) -> bool:
    return method.upper() == "POST" and bool(IMAGES_PATH.search(path))


def _raise(exc: BaseException) -> NoReturn:
    raise exc


@dataclass
class Pending:
    body: dict[str, Any]
    list_cost: float
    live: bool
    reservation: Reservation | None = None


@dataclass
class Guard:
    """Per-test policy for image requests (record mode, ceiling, budget, ledger)."""

    ctx: RunContext
    result: CaseResult
    cassette: Any  # the open vcrpy Cassette
    cassette_path: Path
    mode: str  # effective mode for this cassette: none | once | new_episodes | all
    existed: bool  # the cassette file was there when the test started
    max_cost: float | None
    ledger_root: Path
    abort: Callable[[BaseException], NoReturn] = _raise
    used: set[str] = field(default_factory=set)  # fingerprints of bodies used by this run
    requests_meta: list[dict[str, Any]] = field(default_factory=list)
    recorded_meta: dict[str, Any] = field(default_factory=dict)
    extra_secrets: list[str] = field(default_factory=list)
    last_live: bool | None = None  # whether the last images request went to the network

    # -- shared by sync and async paths
    def before(self, request: Any, content: bytes) -> Pending | None:
        """Called before vcrpy sees ``request``; ``None`` for non-image requests."""
        from vcr.request import Request as VcrRequest

        method, url = str(request.method), str(request.url)
        vcr_request = VcrRequest(method, url, content, dict(request.headers))
        playable = self.cassette.can_play_response_for(vcr_request)
        if not is_images_request(method, request.url.path):
            if not playable and self.cassette.write_protected:
                self.abort(
                    CassetteError(
                        f"{method} {url} is not in cassette {shown(self.cassette_path)} and "
                        f"{self._why_protected()}; {self._record_hint()}"
                    )
                )
            return None
        try:
            body = json.loads(content or b"{}")
            if not isinstance(body, dict):
                raise TypeError
        except (ValueError, TypeError):
            self.abort(CassetteError(f"images request to {url} has no JSON body"))
        cost = self._price(body)
        self.result.list_cost = (self.result.list_cost or 0.0) + cost
        self._describe(body)
        if self.max_cost is not None and cost > self.max_cost:
            self.result.ceiling = "list"
            self.abort(list_ceiling_error(cost, self.max_cost, _summary(body), MARKER_FIX))
        self.used.add(fingerprint(body))
        self.last_live = not playable
        if playable:
            self._note_replay(body)
            return Pending(body, cost, live=False)
        if self.cassette.write_protected:
            self._refuse(body, cost)
        key = _bearer(request.headers.get("authorization"))
        if not key or key == REPLAY_KEY:
            self.abort(
                MissingAPIKeyError(
                    "no API key: this request must be sent live but the client has none "
                    "(the imagegen fixture reads IMAGEGEN_API_KEY, WISGATE_API_KEY or "
                    "OPENAI_API_KEY); nothing was sent"
                )
            )
        self.extra_secrets.append(key)
        reservation = None
        if self.ctx.budget is not None:
            try:
                reservation = self.ctx.budget.reserve(cost, self.result.nodeid)
            except ImagegenError as exc:
                self.abort(exc)
        return Pending(body, cost, live=True, reservation=reservation)

    def after(self, pending: Pending, status: int, content: bytes | None) -> None:
        if not pending.live:
            return
        usage = None
        if status < 400 and content:
            with contextlib.suppress(ValueError, AttributeError):
                usage = json.loads(content).get("usage")
        actual = 0.0
        if status < 400:
            model = str(pending.body.get("model") or "")
            actual = self.ctx.prices.actual_cost(model, usage, pending.list_cost)
        self._book(pending, actual, "ok" if status < 400 else f"api error {status}")
        if status >= 400:
            return
        self.result.actual_cost += actual
        self.result.cassette = "recorded"
        self.requests_meta.append(
            {
                "request_sha256": fingerprint(pending.body),
                "list_cost": pending.list_cost,
                "actual_cost": actual,
                "usage": usage,
            }
        )
        if self.max_cost is not None and actual > self.max_cost:
            self.result.ceiling = "actual"
            self.abort(actual_ceiling_error(actual, self.max_cost, pending.list_cost, MARKER_FIX))

    def failed(self, pending: Pending) -> None:
        """The live request raised (timeout, dropped connection): booked at list cost."""
        if pending.live:
            self._book(pending, pending.list_cost, "error")

    def _book(self, pending: Pending, actual: float, outcome: str) -> None:
        book(
            self.ctx,
            pending.reservation,
            actual,
            outcome,
            nodeid=self.result.nodeid,
            suite=self.result.suite,
            category=self.result.category,
            body=pending.body,
            list_cost=pending.list_cost,
            ledger_root=self.ledger_root,
        )

    # -- helpers
    def _price(self, body: Mapping[str, Any]) -> float:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self.abort(
                CostCeilingError(
                    "images request without a model: pytest-imagegen cannot price it; "
                    "pass model=... (e.g. gpt-image-2)"
                )
            )
        try:
            n = int(body.get("n") or 1)
            return self.ctx.prices.list_cost(
                model,
                str(body.get("size") or "auto"),
                body.get("quality"),
                n,
                str(body.get("prompt") or ""),
            ).total
        except (ImagegenError, ValueError, TypeError) as exc:
            self.abort(exc if isinstance(exc, ImagegenError) else CostCeilingError(str(exc)))

    def _describe(self, body: Mapping[str, Any]) -> None:
        r = self.result
        r.model = str(body.get("model") or r.model)
        r.size = str(body.get("size") or "auto")
        r.quality = body.get("quality")
        r.n = int(body.get("n") or 1)
        r.prompt = str(body.get("prompt") or "")
        r.request = {k: v for k, v in body.items() if k != "prompt"}

    def _note_replay(self, body: Mapping[str, Any]) -> None:
        if self.result.cassette in ("none", "missing"):
            self.result.cassette = "replayed"
        digest = fingerprint(body)
        for entry in self.recorded_meta.get("requests") or []:
            if isinstance(entry, dict) and entry.get("request_sha256") == digest:
                self.result.saved += float(entry.get("actual_cost") or 0.0)
                self.requests_meta.append(entry)
                return

    def _why_protected(self) -> str:
        if self.mode == "none":
            return "--imagegen-record-mode=none never sends requests"
        return f"--imagegen-record-mode={self.mode} does not change an existing cassette"

    def _record_hint(self) -> str:
        node = self.result.nodeid
        if self.existed:
            return f"re-record it with `pytest --imagegen-record-mode=new_episodes {node}`"
        return f"record it with `pytest --imagegen-record-mode=once {node}`"

    def _refuse(self, body: Mapping[str, Any], cost: float) -> NoReturn:
        node = self.result.nodeid
        if not self.existed:
            self.result.cassette = "missing"
            self.abort(
                CassetteError(
                    f"no cassette for {node}; record it with "
                    f"`pytest --imagegen-record-mode=once {node}` (estimated cost {format_usd(cost)})"
                )
            )
        self.result.cassette = "stale"
        changes = _nearest_changes(self.cassette, body)
        lines = "\n".join(f"    {c}" for c in changes)
        self.abort(
            CassetteError(
                f"stale cassette for {node}: this images request is not in "
                f"{shown(self.cassette_path)}; compared with the nearest recorded request:\n"
                f"{lines}\n"
                f"  re-record it with `pytest --imagegen-record-mode=new_episodes {node}` "
                f"(estimated cost {format_usd(cost)})"
            )
        )


def _bearer(value: str | None) -> str:
    if not value:
        return ""
    return value[7:].strip() if value.lower().startswith("bearer ") else value.strip()


def _summary(body: Mapping[str, Any]) -> str:
    return (
        f"{body.get('model')} {body.get('size') or 'auto'} "
        f"quality={body.get('quality') or 'auto'} n={body.get('n') or 1}"
    )


def _nearest_changes(cassette: Any, body: Mapping[str, Any]) -> list[str]:
    best: list[str] | None = None
    for request in getattr(cassette, "requests", []):
        if not is_images_request(request.method, request.path):
            continue
        try:
            old = json.loads(canonical_json(request.body))
        except (ValueError, TypeError):
            continue
        if isinstance(old, dict):
            changes = diff_bodies(old, body)
            if best is None or len(changes) < len(best):
                best = changes
    return best or ["the request differs from every recorded one"]


# ------------------------------------------------------------------ patching


def _wrap(guard: Guard, original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def handle_async(transport: Any, request: Any) -> Any:
            pending = guard.before(request, await request.aread())
            if pending is None:
                return await original(transport, request)
            try:
                response = await original(transport, request)
            except Exception:
                guard.failed(pending)
                raise
            content = await response.aread() if pending.live else None
            guard.after(pending, response.status_code, content)
            return response

        return handle_async

    def handle(transport: Any, request: Any) -> Any:
        pending = guard.before(request, request.read())
        if pending is None:
            return original(transport, request)
        try:
            response = original(transport, request)
        except Exception:
            guard.failed(pending)
            raise
        content = response.read() if pending.live else None
        guard.after(pending, response.status_code, content)
        return response

    return handle


@contextlib.contextmanager
def patch_transports(
    make: Callable[[Callable[..., Any], bool], Callable[..., Any]],
) -> Iterator[None]:
    """Wrap the transports of every installed httpx flavour for the duration."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, cls_name, method, is_async in TRANSPORTS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            cls = getattr(module, cls_name, None)
            if cls is None:
                continue
            original = cls.__dict__.get(method, getattr(cls, method))
            saved.append((cls, method, original))
            setattr(cls, method, make(original, is_async))
        yield
    finally:
        for cls, method, original in reversed(saved):
            setattr(cls, method, original)


def guarded(guard: Guard) -> contextlib.AbstractContextManager[None]:
    return patch_transports(lambda original, is_async: _wrap(guard, original, is_async))


def blocker(
    nodeid: str, abort: Callable[[BaseException], NoReturn]
) -> contextlib.AbstractContextManager[None]:
    """``--imagegen-block-network``: image requests from unmarked tests fail, unsent."""

    def make(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        def check(request: Any) -> None:
            if is_images_request(str(request.method), request.url.path):
                abort(
                    CassetteError(
                        f"{nodeid} sent an images request ({request.url}) without "
                        "@pytest.mark.imagegen; add the marker (or use the imagegen fixture) so "
                        "the call is recorded, priced and replayed; nothing was sent "
                        "(--imagegen-block-network)"
                    )
                )

        if is_async:

            async def handle_async(transport: Any, request: Any) -> Any:
                check(request)
                return await original(transport, request)

            return handle_async

        def handle(transport: Any, request: Any) -> Any:
            check(request)
            return original(transport, request)

        return handle

    return patch_transports(make)
