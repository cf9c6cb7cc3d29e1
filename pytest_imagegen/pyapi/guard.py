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
    APIError,
    CassetteError,
    ImagegenError,
    MissingAPIKeyError,
    command,
    transport_outcome,
)
from ..api.providers import Route, classify
from ..api.redact import Redactor
from ..api.shape import request_params
from ..api.transfer import Deadline, TransferError, cap_bytes
from ..cassettes.files import shown
from ..cassettes.format import canonical_json, diff_bodies, fingerprint
from ..money.context import RunContext
from ..money.pipeline import (
    PaidCall,
    actual_ceiling_error,
    list_ceiling_error,
    overbilled_note,
    refuse_secrets,
)
from ..money.prices import format_usd
from ..review.results import CaseResult
from . import kinds
from .transports import FakeRoute, _raise

MARKER_FIX = "  what to do: lower n, size or quality, or raise max_cost in @pytest.mark.imagegen(max_cost=...)"
REPLAY_KEY = "imagegen-replay"  # the placeholder key of the imagegen fixture's client


@dataclass
class Pending:
    body: dict[str, Any]
    list_cost: float
    live: bool
    call: PaidCall | None = None
    deadline: Deadline | None = None
    route: Route | None = None
    priced: kinds.Priced | None = None  # what the request is, as case fields, and its parts


@dataclass(repr=False)
class Guard:
    """Per-test policy for image requests (record mode, ceiling, budget, ledger): the
    paid-call pipeline for calls a test's own code makes (SPEC §12)."""

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
    _open: dict[str, PaidCall] = field(default_factory=dict)  # calls that may be retried
    _priced: dict[str, kinds.Priced] = field(default_factory=dict)  # their requests, priced

    def __repr__(self) -> str:
        return f"Guard({self.result.nodeid!r}, mode={self.mode!r})"

    @property
    def redactor(self) -> Redactor:
        return self.ctx.redactor

    @property
    def max_bytes(self) -> int:
        return cap_bytes(self.ctx.settings.max_response_mb)

    # -- shared by sync and async paths
    def before(self, request: Any, content: bytes) -> Pending | None:
        """Called for every request of the test; ``None`` for requests that cost nothing."""
        from vcr.request import Request as VcrRequest

        sent_key = _sent_key(request)
        if sent_key and sent_key != REPLAY_KEY:
            self.ctx.redactor.add(sent_key)  # never written, never shown
        if self.route is not None:
            self.route.apply(request, self.abort, strict=True)
        method, url = str(request.method), str(request.url)
        vcr_request = VcrRequest(method, url, content, dict(request.headers))
        playable = self.cassette.can_play_response_for(vcr_request)
        route = classify(method, str(request.url.path))
        kind = route.kind if route is not None else None
        if route is None or kind is None:
            if not playable and self.cassette.write_protected:
                self.abort(
                    CassetteError(
                        f"{method} {url} is not in cassette {shown(self.cassette_path)} and "
                        f"{self._why_protected()}; {self._record_hint()}"
                    )
                )
            return None
        if route.endpoint == "variations":
            self.abort(
                CassetteError(
                    f"{url}: image variations (dall-e-2) are not supported by pytest-imagegen; "
                    "use an edit (client.images.edit) with a prompt instead. Nothing was sent."
                )
            )
        if route.endpoint == "streamGenerateContent":
            self.abort(
                CassetteError(
                    f"{url}: Gemini's streamGenerateContent is not supported by pytest-imagegen "
                    "yet; call generateContent (images come whole anyway). Nothing was sent."
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
            self._begin(retry, retry.attempts + 1)  # the same call again: one list cost
            self.result.attempts += 1
            pending = Pending(
                body, retry.list_cost, True, retry, Deadline(self.ctx.settings.timeout)
            )
            pending.route, pending.priced = route, self._priced.get(digest)
            return pending
        try:
            priced = kinds.price(self.ctx, route, body, edit_sizes)
        except ImagegenError as exc:
            self.abort(exc)
        cost = priced.list_cost
        self.result.list_cost = (self.result.list_cost or 0.0) + cost
        if kind != "judge":
            self._describe(priced.desc)
        if self.max_cost is not None and cost > self.max_cost:
            self.result.ceiling = "list"
            self.abort(list_ceiling_error(cost, self.max_cost, priced.summary, MARKER_FIX))
        if playable:
            self._note_replay(body)
            return Pending(body, cost, False, route=route, priced=priced)
        if self.cassette.write_protected:
            self._refuse(body, cost, route)
        if not sent_key or sent_key == REPLAY_KEY:
            self.abort(
                MissingAPIKeyError(
                    "no API key: this request must be sent live but the client has none "
                    "(looked for Authorization: Bearer, api-key, x-goog-api-key and ?key=; "
                    "the imagegen fixture reads IMAGEGEN_API_KEY, WISGATE_API_KEY or "
                    "OPENAI_API_KEY); nothing was sent"
                )
            )
        try:
            refuse_secrets(self.ctx, body, f"this {kind} request")
        except ImagegenError as exc:
            self.abort(exc)
        call = PaidCall(
            self.ctx,
            nodeid=self.result.nodeid,
            suite=self.result.suite,
            category=self.result.category,
            ledger_body=priced.ledger_body,
            list_cost=cost,
            ledger_root=self.ledger_root,
            kind="judge" if kind == "judge" else "image",
            price_key=priced.price_key,
        )
        self.ctx.track(call)
        self._begin(call, 1)
        self._open[digest] = call
        self._priced[digest] = priced
        self.result.attempts += 1
        pending = Pending(body, cost, True, call, Deadline(self.ctx.settings.timeout))
        pending.route, pending.priced = route, priced
        return pending

    def _begin(self, call: PaidCall, attempt: int) -> None:
        try:
            call.begin(attempt)
        except ImagegenError as exc:
            self._close(call, None, "not sent (budget)")
            self.abort(exc)

    def sending(self, pending: Pending) -> Any:
        """Right before a paid attempt leaves: its slot of the session's limiter (in flight,
        images per minute), then it counts as sent. Returns the slot for :meth:`sent`."""
        call = pending.call
        assert call is not None
        limiter = self.ctx.limiter
        n = pending.body.get("n")
        images = n if isinstance(n, int) and n > 0 else 1
        slot = limiter.acquire(images, call.stopped) if limiter is not None else None
        try:
            call.sending()
        except BaseException:
            self.sent(slot)
            raise
        return slot

    def sent(self, slot: Any) -> None:
        if slot is not None and self.ctx.limiter is not None:
            self.ctx.limiter.release(slot)

    def record(self, request: Any, content: bytes, response: Any, body: bytes) -> None:
        """A paid answer goes into the test's cassette (error answers are dropped on save)."""
        from vcr.request import Request as VcrRequest

        skip = ("content-length", "content-encoding", "transfer-encoding")
        headers: dict[str, list[str]] = {}
        for k, v in response.headers.multi_items():
            if k.lower() not in skip:
                headers.setdefault(k, []).append(v)
        self.cassette.append(
            VcrRequest(str(request.method), str(request.url), content, dict(request.headers)),
            {
                "status": {"code": response.status_code, "message": response.reason_phrase},
                "headers": headers,
                "body": {"string": body},
            },
        )

    def after(self, pending: Pending, status: int, content: bytes) -> None:
        call = pending.call
        if not pending.live or call is None:
            return
        if status >= 400:
            if status in RETRY_STATUSES and b"insufficient_quota" not in (content or b""):
                call.answered(status)  # may be retried: booked when it ends
            else:
                self._close(call, None, f"api error {status}")
            return
        route, described = pending.route, pending.priced
        if route is None or described is None:  # not a request this guard priced
            route = classify("POST", "/v1/images/generations")
            assert route is not None
            described = kinds.price(self.ctx, route, pending.body, [])
        priced, usage = kinds.actual(self.ctx, route, described, content)
        if priced.problem and call.kind != "judge":
            self.result.notes.append(
                f"{self.result.nodeid}: the response's usage cannot be priced "
                f"({priced.problem}); booked at list cost {format_usd(priced.cost)}"
            )
        booked = self._close(call, priced.cost, "ok", calibrate=priced.basis != "list")
        self.result.cassette = "recorded"
        self.requests_meta.append(
            {
                "request_sha256": fingerprint(pending.body),
                "list_cost": pending.list_cost,
                "actual_cost": booked,
                "usage": usage,
            }
        )
        if call.kind != "judge":
            b = described.desc
            note = overbilled_note(
                kinds.price_key(b), str(b.get("model")), str(b.get("size") or "auto"),
                b.get("quality"), int(b.get("n") or 1), pending.list_cost, booked,
            )  # fmt: skip
            if note:
                self.result.notes.append(note)
        if self.max_cost is not None and booked > self.max_cost:
            self.result.ceiling = "actual"
            self.abort(actual_ceiling_error(booked, self.max_cost, pending.list_cost, MARKER_FIX))

    def failed(self, pending: Pending, exc: BaseException) -> None:
        """The live attempt raised: never sent ($0) or an unknown outcome (list cost now)."""
        call = pending.call
        if not pending.live or call is None:
            return
        if isinstance(exc, TransferError) or transport_outcome(exc) == UNKNOWN:
            call.unknown(str(exc))
        else:
            call.answered(0)  # never left the machine: not billed

    def too_large(self, pending: Pending, exc: BaseException) -> NoReturn:
        """An answer above ``imagegen_max_response_mb``: booked at list cost, not retried."""
        if pending.call is not None:
            pending.call.unknown(str(exc))
            self._close(
                pending.call, None, "unknown outcome (answer too large), booked at list cost"
            )
        self.abort(
            APIError(
                f"{exc}; the request may have been billed and is booked at its list cost "
                f"{format_usd(pending.list_cost)}. If the provider really answers this much, raise "
                "imagegen_max_response_mb",
                outcome=UNKNOWN,
            )
        )

    def finish(self) -> None:
        """At the end of the test: book the calls whose last attempt failed."""
        for call in list(self._open.values()):
            outcome = "unknown outcome, booked at list cost" if call.unknown_attempts else call.last
            self._close(call, None, outcome)

    def _close(
        self, call: PaidCall, actual: float | None, outcome: str, *, calibrate: bool = False
    ) -> float:
        for digest, open_call in list(self._open.items()):
            if open_call is call:
                del self._open[digest]
        if call.closed:
            return call.booked
        booked = call.close(actual, outcome, calibrate=calibrate)
        self.ctx.untrack(call)
        self.result.actual_cost += booked
        self.result.server = "fake" if self.ctx.settings.fake_server else "live"
        if call.kind == "judge":
            self.result.judge_cost += booked
        return booked

    # -- helpers
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

    def _refuse(self, body: Mapping[str, Any], cost: float, route: Route | None = None) -> NoReturn:
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
        changes = _nearest_changes(self.cassette, body, route)
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


def _bearer(value: str | None) -> str:
    if not value:
        return ""
    return value[7:].strip() if value.lower().startswith("bearer ") else value.strip()


def _sent_key(request: Any) -> str:
    """The key a request carries: ``Authorization: Bearer``, Azure's ``api-key``, Gemini's
    ``x-goog-api-key`` or its ``?key=`` query parameter."""
    headers = request.headers
    found = _bearer(headers.get("authorization")) or headers.get("api-key", "")
    found = found or headers.get("x-goog-api-key", "")
    if not found:
        with contextlib.suppress(AttributeError, TypeError):
            found = request.url.params.get("key") or ""
    return str(found).strip()


def _nearest_changes(cassette: Any, body: Mapping[str, Any], route: Route | None) -> list[str]:
    """The changed fields against the nearest recorded request (Gemini's as case fields)."""
    best: list[str] | None = None
    want = kinds.describe(route, body)
    for request in getattr(cassette, "requests", []):
        recorded = classify(request.method, request.path)
        if recorded is None or recorded.kind == "judge":
            continue
        try:
            old = json.loads(canonical_json(request.body))
        except (ValueError, TypeError):
            continue
        if isinstance(old, dict):
            changes = diff_bodies(kinds.describe(recorded, old), want)
            if best is None or len(changes) < len(best):
                best = changes
    return best or ["the request differs from every recorded one"]
