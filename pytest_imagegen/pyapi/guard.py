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
    CostCeilingError,
    ImagegenError,
    MissingAPIKeyError,
    command,
    transport_outcome,
)
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
from .transports import FakeRoute, _raise, is_images_request, request_kind

MARKER_FIX = "  what to do: lower n, size or quality, or raise max_cost in @pytest.mark.imagegen(max_cost=...)"
REPLAY_KEY = "imagegen-replay"  # the placeholder key of the imagegen fixture's client


def chat_summary(
    body: Mapping[str, Any],
) -> tuple[str, list[tuple[int | None, int | None, str]], int]:
    """(the text of a chat request, each image it sends as (width, height, detail) — the
    size read from a data URL's header, ``None`` when given by URL — its output limit)."""
    texts, images = [], []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                detail = ref.get("detail") if isinstance(ref, dict) else part.get("detail")
                images.append((*_data_url_size(url), str(detail or "auto")))
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or 4096
    return " ".join(texts), images, int(limit) if isinstance(limit, int) else 4096


def _data_url_size(url: Any) -> tuple[int | None, int | None]:
    """The pixel size of a ``data:image/...;base64,`` URL from its header, if it has one."""
    import base64
    import binascii
    import io

    from PIL import Image

    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None, None
    try:
        text = url.split(",", 1)[1][:65536]
        head = base64.b64decode(text[: len(text) - len(text) % 4])
        with Image.open(io.BytesIO(head)) as image:
            width, height = image.size
            return int(width), int(height)
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        return None, None


@dataclass
class Pending:
    body: dict[str, Any]
    list_cost: float
    live: bool
    call: PaidCall | None = None
    deadline: Deadline | None = None


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

        sent_key = _bearer(request.headers.get("authorization")) or request.headers.get(
            "api-key", ""
        )
        if sent_key and sent_key != REPLAY_KEY:
            self.ctx.redactor.add(sent_key)  # never written, never shown
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
            self._begin(retry, retry.attempts + 1)  # the same call again: one list cost
            self.result.attempts += 1
            return Pending(body, retry.list_cost, True, retry, Deadline(self.ctx.settings.timeout))
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
        if not sent_key or sent_key == REPLAY_KEY:
            self.abort(
                MissingAPIKeyError(
                    "no API key: this request must be sent live but the client has none "
                    "(the imagegen fixture reads IMAGEGEN_API_KEY, WISGATE_API_KEY or "
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
            ledger_body=body if kind == "image" else _chat_ledger_body(body),
            list_cost=cost,
            ledger_root=self.ledger_root,
            kind=kind,
            price_key=_price_key(body) if kind == "image" else None,
        )
        self.ctx.track(call)
        self._begin(call, 1)
        self._open[digest] = call
        self.result.attempts += 1
        return Pending(body, cost, True, call, Deadline(self.ctx.settings.timeout))

    def _begin(self, call: PaidCall, attempt: int) -> None:
        try:
            call.begin(attempt)
        except ImagegenError as exc:
            self._close(call, None, "not sent (budget)")
            self.abort(exc)

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
        usage = None
        with contextlib.suppress(ValueError, AttributeError):
            usage = json.loads(content).get("usage")
        model = str(pending.body.get("model") or "")
        if call.kind == "judge":
            priced = self.ctx.prices.judge_actual_cost(model, usage, pending.list_cost)
        else:
            priced = self.ctx.prices.price_usage(model, usage, pending.list_cost)
            if priced.problem:
                self.result.notes.append(
                    f"{self.result.nodeid}: the response's usage cannot be priced "
                    f"({priced.problem}); booked at list cost {format_usd(priced.cost)}"
                )
        booked = self._close(call, priced.cost, "ok", calibrate=priced.basis == "usage")
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
            b = pending.body
            note = overbilled_note(
                _price_key(b), str(b.get("model")), str(b.get("size") or "auto"),
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
    return {"model": body.get("model"), "prompt": text, "images": len(images)}


def _price_key(body: Mapping[str, Any]) -> str:
    return (
        f"{body.get('model')} {body.get('size') or 'auto'} quality={body.get('quality') or 'auto'}"
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
