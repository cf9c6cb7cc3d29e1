"""Images API client on httpx: the sending end of the paid-call pipeline (SPEC §3, §12).

One call = attempts until an answer that ends it. Retried (exponential backoff,
honouring ``Retry-After``/``retry-after-ms`` up to 60 s): 429 rate limits, 408,
500/502/503/504, timeouts and dropped connections. Never retried: 400
(including ``content_policy_violation``), 401, 403, 429 ``insufficient_quota``
and a Retry-After above 60 s: they fail with the API's own message.

Every attempt has one deadline for the whole exchange and a size cap on the
decoded answer (:mod:`.transfer`). The caller's :class:`AttemptHooks` (the
money pipeline) is told before each attempt (budget reservation) and after one
whose outcome is unknown (booked at list cost), so every attempt that may have
been billed is booked and reserved.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .errors import (
    ANSWERED,
    NOT_SENT,
    RETRY_STATUSES,
    UNKNOWN,
    UNREADABLE,
    APIError,
    transport_outcome,
)
from .providers import ProviderSettings, read_answer
from .providers import get as provider_shape
from .redact import APIKey, Redactor
from .responses import Exchange, GeneratedImage, Generation, generation_from_payload
from .transfer import (
    DEFAULT_MAX_RESPONSE_MB,
    Deadline,
    ResponseTooLarge,
    TransferError,
    cap_bytes,
    read_body,
)

__all__ = ["Exchange", "GeneratedImage", "Generation", "ImagesClient", "generation_from_payload"]

MAX_RETRY_AFTER = 60.0
USER_AGENT = "pytest-imagegen"


class AttemptHooks(Protocol):
    """What the client tells the paid-call pipeline about each attempt of one call."""

    def begin(self, attempt: int) -> None:
        """Before attempt ``attempt`` is sent (a budget reservation; may refuse it)."""

    def sending(self) -> None:
        """The attempt leaves now (it has its limiter slot); may stop it (Ctrl-C)."""

    def stopped(self) -> bool:
        """Waiting for a slot should end (Ctrl-C)."""

    def unknown(self, why: str) -> None:
        """The attempt was sent and may have been billed, but gave no answer."""

    def answered(self, status: int) -> None:
        """The attempt was answered with an error status (not billed)."""


@dataclass
class Answer:
    """The last attempt's answer (2xx), read within the deadline and the cap."""

    status: int
    headers: httpx.Headers
    content: bytes
    attempts: int
    exchange: Exchange


def images_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/images/generations"


def chat_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


def _seconds(value: float) -> float | None:
    """A Retry-After figure: infinity as asked (refused later), NaN or negative as none."""
    if math.isnan(value) or value < 0:
        return None  # nonsense: the client's own backoff
    return value


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            pass
        else:
            return _seconds(seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return _seconds(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_details(content: bytes, reason: str = "") -> tuple[str, str | None, str | None]:
    """(message, code, type) from an OpenAI-style error body, or the raw text."""
    try:
        payload = json.loads(content)
    except ValueError:
        text = content.decode("utf-8", "replace").strip()[:300]
        return (text or reason or "no message"), None, None
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "no message"), err.get("code"), err.get("type")
    if isinstance(err, str):
        return err, None, None
    return str(payload)[:300], None, None


def _hint(status: int, code: str | None, error_type: str | None) -> str:
    if code == "content_policy_violation":
        return "the prompt was refused by the content policy; rephrase it"
    if code == "insufficient_quota" or error_type == "insufficient_quota":
        return "the account is out of quota or credit; top it up or use another key"
    if status == 401:
        return (
            "the API key was rejected; check IMAGEGEN_API_KEY (or WISGATE_API_KEY / "
            "OPENAI_API_KEY) and the base URL"
        )
    if status == 403:
        return "the key may not use this model or endpoint; check its permissions"
    if status == 404:
        return "check --imagegen-base-url / IMAGEGEN_BASE_URL: it should end in /v1"
    if status == 429:
        return "still rate limited after retries; run fewer workers or raise imagegen_max_retries"
    if status >= 500:
        return "the service kept failing; try again later or raise imagegen_max_retries"
    return "fix the request as the message says"


def _count(n: Any) -> int:
    """Images a request asks for (for the rate limiter; 1 when unclear)."""
    try:
        return max(1, int(n or 1))
    except (TypeError, ValueError):
        return 1


def is_retryable(status: int, code: str | None, error_type: str | None) -> bool:
    if status == 429 and "insufficient_quota" in (code, error_type):
        return False
    return status in RETRY_STATUSES


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <key>`` inside httpx; its repr shows no key."""

    def __init__(self, key: APIKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"BearerAuth({self._key!r})"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._key.reveal()}"
        yield request


class KeyHeaderAuth(httpx.Auth):
    """Adds the key in a provider's own header (``api-key``, ``x-goog-api-key``); its repr
    shows no key."""

    def __init__(self, key: APIKey, header: str) -> None:
        self._key = key
        self.header = header

    def __repr__(self) -> str:
        return f"KeyHeaderAuth({self.header!r}, {self._key!r})"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers[self.header] = self._key.reveal()
        yield request


class ImagesClient:
    """Sends images, edit and chat calls; safe to share between threads of a process."""

    def __init__(
        self,
        base_url: str,
        api_key: str | APIKey,
        *,
        timeout: float = 180.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
        redactor: Redactor | None = None,
        limiter: Any = None,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        providers: ProviderSettings | None = None,
    ) -> None:
        self.base_url = base_url
        self.providers = providers or ProviderSettings()  # the azure / gemini routes
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_bytes = cap_bytes(max_response_mb)
        self._sleep = sleep
        key = api_key if isinstance(api_key, APIKey) else APIKey(api_key)
        self._auth = BearerAuth(key)
        self._key = key
        self.redactor = redactor if redactor is not None else Redactor()
        self.limiter: Any = limiter  # limiter.SharedLimiter: one rate for the whole session
        self.redactor.add(key)
        self._http = http or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 30)))
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ImagesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImagesClient({self.base_url!r})"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return float(self.backoff * (2**attempt))

    def _auth_for(self, header: str) -> httpx.Auth:
        """The key in ``header``: ``Authorization: Bearer`` or a provider's own header."""
        return self._auth if header == "authorization" else KeyHeaderAuth(self._key, header)

    def _exchange(
        self,
        method: str,
        url: str,
        what: str,
        record_body: str | None,
        auth: bool | httpx.Auth,
        **kwargs: Any,
    ) -> tuple[httpx.Response, bytes, Exchange]:
        """One attempt: the request sent and its whole answer read, within the deadline."""
        deadline = Deadline(self.timeout)
        request = self._http.build_request(method, url, **kwargs)
        deadline.clip(request.extensions)
        chosen = self._auth if auth is True else (auth or None)
        response = self._http.send(request, stream=True, auth=chosen)
        content = read_body(response, deadline, self.max_bytes, what, request)
        exchange = Exchange(
            method=method,
            url=str(request.url),
            body=record_body,
            content_type=request.headers.get("content-type", ""),
            status=response.status_code,
            reason=response.reason_phrase,
            headers=list(response.headers.multi_items()),
            content=content,
        )
        return response, content, exchange

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        images: int = 0,
        hooks: AttemptHooks | None = None,
        record_body: str | None = None,
        auth: bool | httpx.Auth = True,
        **kwargs: Any,
    ) -> Answer:
        """Send with retries; return the final 2xx answer, or raise :class:`APIError`.

        With a shared limiter, every attempt waits for its slot (in flight, images per
        minute) and a 429 makes every process of the session slow down."""
        attempt = 0
        maybe_billed = False  # an earlier attempt's outcome is unknown (timeout, drop)
        mask = self.redactor.mask
        while True:
            attempt += 1
            if hooks is not None:
                hooks.begin(attempt)
            slot = (
                self.limiter.acquire(images, hooks.stopped if hooks is not None else None)
                if self.limiter is not None
                else None
            )
            try:
                if hooks is not None:
                    hooks.sending()
                response, content, exchange = self._exchange(
                    method, url, what, record_body, auth, **kwargs
                )
            except (
                httpx.TimeoutException,
                httpx.NetworkError,
                httpx.RemoteProtocolError,
                TransferError,
            ) as exc:
                outcome = UNKNOWN if isinstance(exc, TransferError) else transport_outcome(exc)
                if outcome == UNKNOWN:
                    maybe_billed = True
                    if hooks is not None:
                        hooks.unknown(str(exc))
                if attempt > self.max_retries or isinstance(exc, ResponseTooLarge):
                    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                    if outcome == NOT_SENT:
                        kind = "could not connect"
                    detail = (
                        str(exc)
                        if isinstance(exc, TransferError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    raise APIError(
                        mask(
                            f"{what} {kind} after {attempt} attempt(s): {detail}; check the "
                            "base URL and the service, or raise imagegen_timeout / "
                            "imagegen_max_retries / imagegen_max_response_mb"
                        ),
                        attempts=attempt,
                        outcome=UNKNOWN if maybe_billed else NOT_SENT,
                    ) from None
                self._sleep(self._delay(attempt - 1, None))
                continue
            finally:
                if slot is not None and self.limiter is not None:
                    self.limiter.release(slot)
            status = response.status_code
            if status < 400:
                return Answer(status, response.headers, content, attempt, exchange)
            if hooks is not None:
                hooks.answered(status)
            message, code, error_type = error_details(content, response.reason_phrase)
            message = mask(message)
            wait = retry_after_seconds(response.headers)
            retryable = is_retryable(status, code, error_type)
            if retryable and wait is not None and wait > MAX_RETRY_AFTER:
                raise APIError(
                    f"{what} failed: HTTP {status}: the provider asked to wait "
                    f"{'forever' if math.isinf(wait) else f'{wait:,.0f} s'} (Retry-After) before "
                    f"trying again: {message}\n  what to do: pytest-imagegen waits at most "
                    f"{MAX_RETRY_AFTER:.0f} s, so the case fails instead of hanging; try again "
                    "later, or set imagegen_rate_limit below the provider's limit",
                    status=status,
                    code=code,
                    error_type=error_type,
                    attempts=attempt,
                    outcome=UNKNOWN if maybe_billed else ANSWERED,
                )
            if status == 429 and self.limiter is not None:
                self.limiter.pause(wait if wait is not None else self._delay(attempt - 1, None))
            if retryable and attempt <= self.max_retries:
                self._sleep(self._delay(attempt - 1, wait))
                continue
            label = " ".join(dict.fromkeys(str(x) for x in (status, error_type, code) if x))
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise APIError(
                f"{what} failed{tries}: HTTP {label}: {message}\n"
                f"  what to do: {_hint(status, code, error_type)}",
                status=status,
                code=code,
                error_type=error_type,
                attempts=attempt,
                outcome=UNKNOWN if maybe_billed else ANSWERED,
            )

    def chat(
        self, body: Mapping[str, Any], hooks: AttemptHooks | None = None
    ) -> tuple[dict[str, Any], int]:
        """POST ``/chat/completions`` (the judge): the answer's JSON and the attempts used."""
        answer = self._send(
            "POST",
            chat_url(self.base_url),
            "judge request",
            hooks=hooks,
            json=dict(body),
            headers={"User-Agent": USER_AGENT},
        )
        try:
            payload = json.loads(answer.content)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise APIError(
                "judge response is not JSON; is the base URL an OpenAI-compatible endpoint?",
                status=answer.status,
                attempts=answer.attempts,
                outcome=UNREADABLE,
            )
        return payload, answer.attempts

    def edit(
        self,
        fields: Mapping[str, str],
        images: list[tuple[str, bytes, str]],
        mask: tuple[str, bytes, str] | None = None,
        *,
        hooks: AttemptHooks | None = None,
        record_body: str | None = None,
        provider: str = "openai",
    ) -> Generation:
        """POST ``/images/edits`` (multipart: text fields, files ``image[]`` and ``mask``)."""
        files = [("image[]", image) for image in images]
        if mask is not None:
            files.append(("mask", mask))
        wire = provider_shape(provider).request(self.base_url, self.providers, fields, "edits")
        answer = self._send(
            "POST",
            wire.url,
            wire.what,
            images=_count(fields.get("n")),
            hooks=hooks,
            record_body=record_body,
            auth=self._auth_for(wire.auth_header),
            data=dict(fields),
            files=files,
            headers={"User-Agent": USER_AGENT},
        )
        return self._answered(answer)

    def generate(
        self,
        body: Mapping[str, Any],
        *,
        hooks: AttemptHooks | None = None,
        provider: str = "openai",
    ) -> Generation:
        """POST the request of ``body`` (case fields) in ``provider``'s shape
        (``/images/generations``, an Azure deployment, Gemini's ``generateContent``) and
        return decoded images."""
        wire = provider_shape(provider).request(self.base_url, self.providers, body, "generations")
        answer = self._send(
            "POST",
            wire.url,
            wire.what,
            images=_count(body.get("n")),
            hooks=hooks,
            record_body=json.dumps(wire.body, sort_keys=True),
            auth=self._auth_for(wire.auth_header),
            json=wire.body,
            headers={"User-Agent": USER_AGENT},
        )
        return self._answered(answer)

    def _answered(self, answer: Answer) -> Generation:
        """The images of a 2xx answer; one that cannot be read was billed all the same."""
        try:
            return self._decode(answer)
        except APIError as exc:
            exc.outcome = UNREADABLE
            exc.attempts = answer.attempts
            raise

    def _decode(self, answer: Answer) -> Generation:
        exchanges = [answer.exchange]

        def fetch(index: int, item: Mapping[str, Any]) -> tuple[bytes, str]:
            if item.get("b64_json"):
                try:
                    return base64.b64decode(str(item["b64_json"]), validate=True), "b64_json"
                except (binascii.Error, ValueError):
                    raise APIError(f"image {index} in the response is not valid base64") from None
            if item.get("url"):
                # Download in the same call; never send the API key to the image host.
                got = self._send(
                    "GET", str(item["url"]), f"download of image {index}", auth=False,
                    headers={"User-Agent": USER_AGENT},
                )  # fmt: skip
                exchanges.append(got.exchange)
                return got.content, "url"
            raise APIError(f"image {index} in the response has neither b64_json nor url")

        content_type = answer.headers.get("content-type", "")
        generation = read_answer(answer.content, content_type, fetch, status=answer.status)
        generation.attempts = answer.attempts
        generation.exchanges = exchanges
        return generation
