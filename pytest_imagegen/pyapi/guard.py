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
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..api.errors import (
    RETRY_STATUSES,
    UNKNOWN,
    CassetteError,
    CostCeilingError,
    ImagegenError,
    MissingAPIKeyError,
    command,
    transport_outcome,
)
from ..api.redact import Redactor
from ..api.shape import request_params
from ..cassettes.files import shown
from ..cassettes.format import canonical_json, diff_bodies, fingerprint
from ..money.budget import Reservation
from ..money.context import RunContext
from ..money.pipeline import actual_ceiling_error, book, list_ceiling_error, price_response
from ..money.prices import format_usd
from ..review.results import CaseResult
from .transports import FakeRoute, _raise, is_images_request, request_kind

MARKER_FIX = "  what to do: lower n, size or quality, or raise max_cost in @pytest.mark.imagegen(max_cost=...)"
REPLAY_KEY = "imagegen-replay"  # the placeholder key of the imagegen fixture's client


def chat_summary(body: Mapping[str, Any]) -> tuple[str, int, int]:
    """(the text of a chat request, how many images it sends, its output token limit)."""
    texts, images = [], 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                images += 1
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or 4096
    return " ".join(texts), images, int(limit) if isinstance(limit, int) else 4096


@dataclass(eq=False)
class Call:
    """One logical images call: its attempts (the SDK's or our client's retries) share one
    list cost, one budget reservation and one ledger line (SPEC §12)."""

    body: dict[str, Any]
    fingerprint: str
    list_cost: float
    reservation: Reservation | None = None
    kind: str = "image"
    attempts: int = 0
    in_flight: bool = False
    maybe_billed: bool = False  # an attempt timed out or dropped after it was sent
    last: str = "not sent (connection failed)"  # what the last failed attempt was


@dataclass
class Pending:
    body: dict[str, Any]
    list_cost: float
    live: bool
    call: Call | None = None


@dataclass(repr=False)
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
    route: FakeRoute | None = None
    used: set[str] = field(default_factory=set)  # fingerprints of bodies used by this run
    requests_meta: list[dict[str, Any]] = field(default_factory=list)
    recorded_meta: dict[str, Any] = field(default_factory=dict)
    last_live: bool | None = None  # whether the last images request went to the network
    _open: dict[str, Call] = field(default_factory=dict)  # calls that may still be retried

    def __repr__(self) -> str:
        return f"Guard({self.result.nodeid!r}, mode={self.mode!r})"

    @property
    def redactor(self) -> Redactor:
        return self.ctx.redactor

    # -- shared by sync and async paths
    def before(self, request: Any, content: bytes) -> Pending | None:
        """Called before vcrpy sees ``request``; ``None`` for non-image requests."""
        from vcr.request import Request as VcrRequest

        if self.route is not None:
            self.route.apply(request, self.abort, strict=True)
        method, url = str(request.method), str(request.url)
        vcr_request = VcrRequest(method, url, content, dict(request.headers))
        playable = self.cassette.can_play_response_for(vcr_request)
        kind = request_kind(method, request.url.path)
        if kind is None:
            if not playable and self.cassette.write_protected:
                self.abort(
                    CassetteError(
                        f"{method} {url} is not in cassette {shown(self.cassette_path)} and "
                        f"{self._why_protected()}; {self._record_hint()}"
                    )
                )
            return None
        if request.url.path.rstrip("/").endswith("/images/variations"):
            self.abort(
                CassetteError(
                    f"{url}: image variations (dall-e-2) are not supported by pytest-imagegen; "
                    "use an edit (client.images.edit) with a prompt instead. Nothing was sent."
                )
            )
        from ..api.multipart import image_sizes, parse_multipart

        form = parse_multipart(content) if kind == "image" and content else None
        edit_sizes: list[tuple[int, int]] = []
        if form is not None:  # an edit: described by its fields and its files' sha256
            body = json.loads(canonical_json(content))
            edit_sizes = image_sizes(form[1])
        else:
            try:
                body = json.loads(content or b"{}")
                if not isinstance(body, dict):
                    raise TypeError
            except (ValueError, TypeError):
                self.abort(CassetteError(f"{kind} request to {url} has no JSON body"))
        digest = fingerprint(body)
        self.used.add(digest)
        self.last_live = not playable
        retry = self._open.get(digest)
        if not playable and retry is not None and not retry.in_flight:
            retry.attempts += 1  # the same call again: noted, not charged again
            retry.in_flight = True
            self.result.attempts += 1
            return Pending(body, retry.list_cost, live=True, call=retry)
        cost = self._price(body, edit_sizes) if kind == "image" else self._price_chat(body)
        self.result.list_cost = (self.result.list_cost or 0.0) + cost
        if kind == "image":
            self._describe(body)
        if self.max_cost is not None and cost > self.max_cost:
            self.result.ceiling = "list"
            self.abort(list_ceiling_error(cost, self.max_cost, _summary(body), MARKER_FIX))
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
        self.ctx.redactor.add(key)  # never written, never shown
        call = Call(body, digest, cost, attempts=1, in_flight=True, kind=kind)
        if self.ctx.budget is not None:
            try:
                call.reservation = self.ctx.budget.reserve(cost, self.result.nodeid)
            except ImagegenError as exc:
                self.abort(exc)
        self._open[digest] = call
        self.result.attempts += 1
        return Pending(body, cost, live=True, call=call)

    def after(self, pending: Pending, status: int, content: bytes | None) -> None:
        call = pending.call
        if not pending.live or call is None:
            return
        call.in_flight = False
        if status >= 400:
            if status in RETRY_STATUSES and b"insufficient_quota" not in (content or b""):
                call.last = f"api error {status}"  # may be retried: booked when it ends
            else:
                self._close(call, 0.0, f"api error {status}")
            return
        usage = None
        if content:
            with contextlib.suppress(ValueError, AttributeError):
                usage = json.loads(content).get("usage")
        model = str(pending.body.get("model") or "")
        if call.kind == "judge":
            priced = self.ctx.prices.judge_actual_cost(model, usage, pending.list_cost)
            actual = priced.cost
            self.result.judge_cost += actual
        else:
            actual = price_response(
                self.ctx, model, usage, pending.list_cost, self.result.nodeid, self.result.notes
            )
        self._close(call, actual, "ok")
        self.result.actual_cost += actual
        self.result.cassette = "recorded"
        self.requests_meta.append(
            {
                "request_sha256": call.fingerprint,
                "list_cost": pending.list_cost,
                "actual_cost": actual,
                "usage": usage,
            }
        )
        if self.max_cost is not None and actual > self.max_cost:
            self.result.ceiling = "actual"
            self.abort(actual_ceiling_error(actual, self.max_cost, pending.list_cost, MARKER_FIX))

    def failed(self, pending: Pending, exc: BaseException) -> None:
        """The live request raised: never sent ($0) or an unknown outcome (list cost)."""
        call = pending.call
        if not pending.live or call is None:
            return
        call.in_flight = False
        outcome = transport_outcome(exc)
        if outcome == UNKNOWN:
            call.maybe_billed = True
            call.last = "unknown outcome, booked at list cost"
        else:
            call.last = "not sent (connection failed)"

    def finish(self) -> None:
        """At the end of the test: book the calls whose last attempt failed."""
        for call in list(self._open.values()):
            if call.maybe_billed:
                self._close(call, call.list_cost, "unknown outcome, booked at list cost")
            else:
                self._close(call, 0.0, call.last)

    def _close(self, call: Call, actual: float, outcome: str) -> None:
        self._open.pop(call.fingerprint, None)
        book(
            self.ctx,
            call.reservation,
            actual,
            outcome,
            nodeid=self.result.nodeid,
            suite=self.result.suite,
            category=self.result.category,
            body=call.body if call.kind == "image" else _chat_ledger_body(call.body),
            list_cost=call.list_cost,
            ledger_root=self.ledger_root,
            attempts=call.attempts,
            kind=call.kind,
        )

    # -- helpers
    def _price_chat(self, body: Mapping[str, Any]) -> float:
        model = body.get("model")
        text, images, limit = chat_summary(body)
        try:
            return self.ctx.prices.chat_list_cost(str(model), images, len(text), limit)
        except ImagegenError as exc:
            self.abort(exc)

    def _price(
        self, body: Mapping[str, Any], edit_sizes: list[tuple[int, int]] | None = None
    ) -> float:
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
            images = self.ctx.prices.list_cost(
                model,
                str(body.get("size") or "auto"),
                body.get("quality"),
                n,
                str(body.get("prompt") or ""),
            ).total
            inputs = self.ctx.prices.input_images_cost(model, edit_sizes or [])
            return round(images + inputs, 6)
        except (ImagegenError, ValueError, TypeError) as exc:
            self.abort(exc if isinstance(exc, ImagegenError) else CostCeilingError(str(exc)))

    def _describe(self, body: Mapping[str, Any]) -> None:
        r = self.result
        r.model = str(body.get("model") or r.model)
        r.size = str(body.get("size") or "auto")
        r.quality = body.get("quality")
        r.n = int(body.get("n") or 1)
        r.prompt = str(body.get("prompt") or "")
        r.request = request_params(body)

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
            return f"re-record it with {command('--imagegen-record-mode=new_episodes', node)}"
        return f"record it with {command('--imagegen-record-mode=once', node)}"

    def _refuse(self, body: Mapping[str, Any], cost: float) -> NoReturn:
        node = self.result.nodeid
        if not self.existed:
            self.result.cassette = "missing"
            self.abort(
                CassetteError(
                    f"no cassette for {node}; record it with "
                    f"{command('--imagegen-record-mode=once', node)} (estimated cost {format_usd(cost)})"
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
                f"  re-record it with {command('--imagegen-record-mode=new_episodes', node)} "
                f"(estimated cost {format_usd(cost)})"
            )
        )


def _chat_ledger_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a chat call: the model and its text, not the images."""
    text, images, _ = chat_summary(body)
    return {"model": body.get("model"), "prompt": text, "images": images}


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
