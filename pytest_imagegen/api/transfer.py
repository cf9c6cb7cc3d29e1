"""One deadline and one size cap for a whole HTTP exchange (SPEC §12).

``imagegen_timeout`` covers connect, send and the complete body, not each read:
a body trickling one byte a second ends at the deadline. The body is read in
chunks, decompressed as it comes, and refused beyond ``imagegen_max_response_mb``
(decompressed), so a 200 MB answer or a gzip bomb never reaches memory whole.
Both failures happen after the request was sent: the provider may have billed
it, so they are *unknown outcomes* (booked at list cost).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_RESPONSE_MB = 64.0


class TransferError(Exception):
    """The exchange was cut short after the request was sent (deadline or size cap)."""


class DeadlineExceeded(TransferError):
    pass


class ResponseTooLarge(TransferError):
    pass


@dataclass
class Deadline:
    """The end of one exchange, on the monotonic clock."""

    seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        if not self.started:
            self.started = time.monotonic()

    @property
    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def check(self, what: str) -> None:
        if self.remaining <= 0:
            raise DeadlineExceeded(
                f"{what} took longer than imagegen_timeout = {self.seconds:g} s in all "
                "(connect, send and the whole answer)"
            )

    def clip(self, extensions: MutableMapping[str, Any]) -> None:
        """Limit every timeout of a request (httpx ``extensions['timeout']``) to what is left.

        httpcore looks the read timeout up when the body starts, so clipping again just
        before reading the body keeps a stalled body inside the deadline."""
        left = max(0.001, self.remaining)
        current = extensions.get("timeout")
        timeouts = dict(current) if isinstance(current, dict) else {}
        for name in ("connect", "read", "write", "pool"):
            value = timeouts.get(name)
            timeouts[name] = left if value is None else min(float(value), left)
        if isinstance(current, dict):
            current.update(timeouts)  # the dict httpcore holds for this request
        else:
            extensions["timeout"] = timeouts


def cap_bytes(max_mb: float) -> int:
    return int(max_mb * 1024 * 1024)


def _too_large(cap: int, what: str) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{what} is larger than imagegen_max_response_mb = {cap / 1024 / 1024:g} MB "
        "(decompressed); it was not read further"
    )


class _Body:
    """The chunks of one answer as they arrive: the cap (decompressed) and the deadline
    checked after each."""

    def __init__(self, response: Any, deadline: Deadline, cap: int, what: str, request: Any):
        self.deadline, self.cap, self.what = deadline, cap, what
        self.chunks: list[bytes] = []
        self.size = 0
        self.declared_over = False
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap and not _encoded(response):
            self.declared_over = True  # the caller closes it and raises :meth:`too_large`
        else:
            deadline.clip((request if request is not None else response.request).extensions)

    def too_large(self) -> ResponseTooLarge:
        return _too_large(self.cap, self.what)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise self.too_large()
        self.chunks.append(chunk)
        self.deadline.check(self.what)

    def content(self) -> bytes:
        return b"".join(self.chunks)


def read_body(
    response: Any, deadline: Deadline, cap: int, what: str = "the answer", request: Any = None
) -> bytes:
    """The decoded body of a streamed httpx (or httpx2) response, within the deadline and
    the cap; the response is closed either way."""
    body = _Body(response, deadline, cap, what, request)
    try:
        if body.declared_over:
            raise body.too_large()
        chunk_iter: Iterator[bytes] = response.iter_bytes()
        for chunk in chunk_iter:
            body.add(chunk)
    finally:
        response.close()
    return body.content()


async def aread_body(
    response: Any, deadline: Deadline, cap: int, what: str = "the answer", request: Any = None
) -> bytes:
    """:func:`read_body` for async responses."""
    body = _Body(response, deadline, cap, what, request)
    try:
        if body.declared_over:
            raise body.too_large()
        chunk_iter: AsyncIterator[bytes] = response.aiter_bytes()
        async for chunk in chunk_iter:
            body.add(chunk)
    finally:
        await response.aclose()
    return body.content()


def _encoded(response: Any) -> bool:
    return bool(response.headers.get("content-encoding", "").strip())


def decoded_copy(response: Any, content: bytes, request: Any = None) -> Any:
    """A new response of the same class holding ``content`` (already decoded): what the
    caller (the openai SDK, vcrpy) reads instead of the network stream."""
    skip = ("content-length", "content-encoding", "transfer-encoding")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    return type(response)(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=dict(response.extensions),
    )
