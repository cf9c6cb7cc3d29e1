"""Images API client on httpx: one generation request, retries, error mapping.

Retried (exponential backoff, honouring ``Retry-After``/``retry-after-ms``):
429 rate limits, 408, 500/502/503/504, timeouts and dropped connections.
Never retried: 400 (including ``content_policy_violation``), 401, 403 and
429 ``insufficient_quota``: they fail with the API's own message.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from .redact import APIKey, Redactor

MAX_RETRY_AFTER = 60.0
USER_AGENT = "pytest-imagegen"


@dataclass
class GeneratedImage:
    data: bytes
    revised_prompt: str | None = None
    source: str = "b64_json"  # or "url"
    sha256: str | None = None  # known when replayed from a (verified) image sidecar

    def __repr__(self) -> str:
        return f"GeneratedImage(<{len(self.data)} bytes>, source={self.source!r})"


@dataclass
class Generation:
    """What one successful images call returned."""

    images: list[GeneratedImage]
    usage: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)  # echoed size, quality, output_format
    attempts: int = 1

    @property
    def revised_prompts(self) -> list[str | None]:
        return [i.revised_prompt for i in self.images]


def generation_from_payload(
    payload: Any,
    fetch: Callable[[int, Mapping[str, Any]], tuple[bytes, str]],
    *,
    attempts: int = 1,
    status: int | None = None,
) -> Generation:
    """A :class:`Generation` from a response payload; ``fetch`` gives each item's bytes."""
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise APIError(
            "images response is not an images result (no `data` list); is the base URL an "
            "OpenAI-compatible endpoint?",
            status=status,
            outcome=UNREADABLE,
        )
    images = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise APIError(f"image {index} in the response is not an object", outcome=UNREADABLE)
        revised = item.get("revised_prompt")
        data, source = fetch(index, item)
        images.append(GeneratedImage(data, revised, source))
    meta = {
        k: payload[k] for k in ("size", "quality", "output_format", "background") if k in payload
    }
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    return Generation(images=images, usage=usage, meta=meta, attempts=attempts)


def images_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/images/generations"


def chat_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_details(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """(message, code, type) from an OpenAI-style error body, or the raw text."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()[:300]
        return (text or response.reason_phrase or "no message"), None, None
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


class ImagesClient:
    """Sends one images request at a time; safe to share within a process."""

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
    ) -> None:
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        key = api_key if isinstance(api_key, APIKey) else APIKey(api_key)
        self._auth = BearerAuth(key)
        self.redactor = redactor if redactor is not None else Redactor()
        self.limiter: Any = limiter  # limiter.SharedLimiter: one rate for the whole session
        #: when a list: every successful response is appended (the prefetch writes cassettes)
        self.exchanges: list[httpx.Response] | None = None
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

    def _send(
        self, method: str, url: str, what: str, images: int = 0, **kwargs: Any
    ) -> tuple[httpx.Response, int]:
        """Send with retries; return the final non-retryable response and attempts used.

        With a shared limiter, every attempt waits for its slot (in flight, images per
        minute) and a 429 makes every process of the session slow down."""
        attempt = 0
        maybe_billed = False  # an earlier attempt's outcome is unknown (timeout, drop)
        mask = self.redactor.mask
        while True:
            attempt += 1
            slot = self.limiter.acquire(images) if self.limiter is not None else None
            try:
                response = self._http.request(method, url, **kwargs)
                if self.exchanges is not None and response.status_code < 400:
                    self.exchanges.append(response)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                outcome = transport_outcome(exc)
                maybe_billed = maybe_billed or outcome == UNKNOWN
                if attempt > self.max_retries:
                    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                    if outcome == NOT_SENT:
                        kind = "could not connect"
                    raise APIError(
                        mask(
                            f"{what} {kind} after {attempt} attempt(s): {type(exc).__name__}: "
                            f"{exc}; check the base URL and the service, or raise "
                            "imagegen_timeout / imagegen_max_retries"
                        ),
                        attempts=attempt,
                        outcome=UNKNOWN if maybe_billed else NOT_SENT,
                    ) from None
                self._sleep(self._delay(attempt - 1, None))
                continue
            finally:
                if slot is not None and self.limiter is not None:
                    self.limiter.release(slot)
            if response.status_code < 400:
                return response, attempt
            if response.status_code == 429 and self.limiter is not None:
                wait = retry_after_seconds(response.headers)
                self.limiter.pause(wait if wait is not None else self._delay(attempt - 1, None))
            message, code, error_type = _error_details(response)
            message = mask(message)
            if is_retryable(response.status_code, code, error_type) and attempt <= self.max_retries:
                self._sleep(self._delay(attempt - 1, retry_after_seconds(response.headers)))
                continue
            label = " ".join(
                dict.fromkeys(str(x) for x in (response.status_code, error_type, code) if x)
            )
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise APIError(
                f"{what} failed{tries}: HTTP {label}: {message}\n"
                f"  what to do: {_hint(response.status_code, code, error_type)}",
                status=response.status_code,
                code=code,
                error_type=error_type,
                attempts=attempt,
                outcome=UNKNOWN if maybe_billed else ANSWERED,
            )

    def chat(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """POST ``/chat/completions`` (the judge): the answer's JSON and the attempts used."""
        response, attempts = self._send(
            "POST",
            chat_url(self.base_url),
            "judge request",
            json=dict(body),
            headers={"User-Agent": USER_AGENT},
            auth=self._auth,
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise APIError(
                "judge response is not JSON; is the base URL an OpenAI-compatible endpoint?",
                status=response.status_code,
                attempts=attempts,
                outcome=UNREADABLE,
            )
        return payload, attempts

    def edit(
        self,
        fields: Mapping[str, str],
        images: list[tuple[str, bytes, str]],
        mask: tuple[str, bytes, str] | None = None,
    ) -> Generation:
        """POST ``/images/edits`` (multipart: text fields, files ``image[]`` and ``mask``)."""
        files = [("image[]", image) for image in images]
        if mask is not None:
            files.append(("mask", mask))
        response, attempts = self._send(
            "POST",
            self.base_url.rstrip("/") + "/images/edits",
            "image edit request",
            images=_count(fields.get("n")),
            data=dict(fields),
            files=files,
            headers={"User-Agent": USER_AGENT},
            auth=self._auth,
        )
        return self._answered(response, attempts)

    def generate(self, body: Mapping[str, Any]) -> Generation:
        """POST ``/images/generations`` and return decoded images."""
        response, attempts = self._send(
            "POST",
            images_url(self.base_url),
            "images request",
            images=_count(body.get("n")),
            json=dict(body),
            headers={"User-Agent": USER_AGENT},
            auth=self._auth,
        )
        return self._answered(response, attempts)

    def _answered(self, response: httpx.Response, attempts: int) -> Generation:
        """The images of a 2xx answer; one that cannot be read was billed all the same."""
        try:
            return self._decode(response, attempts)
        except APIError as exc:
            exc.outcome = UNREADABLE
            raise

    def _decode(self, response: httpx.Response, attempts: int) -> Generation:
        try:
            payload = response.json()
        except ValueError:
            payload = None

        def fetch(index: int, item: Mapping[str, Any]) -> tuple[bytes, str]:
            if item.get("b64_json"):
                try:
                    return base64.b64decode(str(item["b64_json"]), validate=True), "b64_json"
                except (binascii.Error, ValueError):
                    raise APIError(f"image {index} in the response is not valid base64") from None
            if item.get("url"):
                # Download in the same call; never send the API key to the image host.
                got, _ = self._send(
                    "GET", str(item["url"]), f"download of image {index}",
                    headers={"User-Agent": USER_AGENT},
                )  # fmt: skip
                return got.content, "url"
            raise APIError(f"image {index} in the response has neither b64_json nor url")

        return generation_from_payload(
            payload, fetch, attempts=attempts, status=response.status_code
        )
