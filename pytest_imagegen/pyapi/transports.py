"""The HTTP seam of the Python API: requests of httpx and httpx2 (the HTTP library of
openai >= 3) as they leave, whatever client a test uses.

The transport methods of both are wrapped on top of vcrpy's own patches, so the
guard (:mod:`.guard`) sees each request before vcrpy replays or records it;
``--imagegen-block-network`` and ``--imagegen-fake-server`` use the same seam.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from ..api.errors import CassetteError
from ..api.redact import Redactor

IMAGES_PATH = re.compile(r"/images/(generations|edits|variations)/?$")
CHAT_PATH = re.compile(r"/chat/completions/?$")
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
#: (module, class, method, is_async) of the transports to wrap
TRANSPORTS = (
    ("httpx", "HTTPTransport", "handle_request", False),
    ("httpx", "AsyncHTTPTransport", "handle_async_request", True),
    ("httpx2", "HTTPTransport", "handle_request", False),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request", True),
)


def is_images_request(method: str, path: str) -> bool:
    return method.upper() == "POST" and bool(IMAGES_PATH.search(path))


def is_chat_request(method: str, path: str) -> bool:
    return method.upper() == "POST" and bool(CHAT_PATH.search(path))


def request_kind(method: str, path: str) -> str | None:
    """``image`` or ``judge`` (a chat call, e.g. a vision judge) for requests that cost."""
    if is_images_request(method, path):
        return "image"
    return "judge" if is_chat_request(method, path) else None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _raise(exc: BaseException) -> NoReturn:
    raise exc


@dataclass(frozen=True)
class FakeRoute:
    """``--imagegen-fake-server``: every images and chat request goes to the fake server.

    ``strict`` (tests marked ``imagegen``) also refuses, unsent, any other request
    to a host that is not on this machine.
    """

    base_url: str  # the fake server's, ending in /v1

    def apply(self, request: Any, abort: Callable[[BaseException], NoReturn], strict: bool) -> None:
        url = request.url
        path = str(url.path)
        m = IMAGES_PATH.search(path) or CHAT_PATH.search(path)
        if m is not None:
            target = type(url)(self.base_url.rstrip("/") + m.group(0))
            if url.query:
                target = target.copy_with(query=url.query)
            request.url = target
            request.headers["Host"] = target.netloc.decode("ascii")
            return
        if strict and not is_loopback(str(url.host)):
            abort(
                CassetteError(
                    f"{request.method} {url.scheme}://{url.host}{path} was not sent: with "
                    "--imagegen-fake-server nothing may leave this machine (images and chat "
                    "requests go to the fake server; this is neither)"
                )
            )


class TransportGuard(Protocol):
    """What :func:`guarded` needs of a guard (see :class:`.guard.Guard`)."""

    @property
    def redactor(self) -> Redactor: ...

    def before(self, request: Any, content: bytes) -> Any: ...

    def after(self, pending: Any, status: int, content: bytes | None) -> None: ...

    def failed(self, pending: Any, exc: BaseException) -> None: ...


def _masked(response: Any, content: bytes | None, guard: TransportGuard) -> Any:
    """An error answer that echoes an API key, with the key masked (the SDK's exception
    message, the terminal and JUnit then never see it)."""
    if not content or response.status_code < 400:
        return response
    text = content.decode("utf-8", "replace")
    redactor = guard.redactor
    if not redactor.find(text):
        return response
    skip = ("content-length", "content-encoding", "transfer-encoding")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    return type(response)(
        response.status_code,
        headers=headers,
        content=redactor.mask(text).encode("utf-8"),
        extensions=dict(response.extensions),
    )


def _wrap(
    guard: TransportGuard, original: Callable[..., Any], is_async: bool
) -> Callable[..., Any]:
    if is_async:

        async def handle_async(transport: Any, request: Any) -> Any:
            pending = guard.before(request, await request.aread())
            if pending is None:
                return await original(transport, request)
            try:
                response = await original(transport, request)
            except Exception as exc:
                guard.failed(pending, exc)
                raise
            content = await response.aread() if pending.live else None
            guard.after(pending, response.status_code, content)
            return _masked(response, content, guard)

        return handle_async

    def handle(transport: Any, request: Any) -> Any:
        pending = guard.before(request, request.read())
        if pending is None:
            return original(transport, request)
        try:
            response = original(transport, request)
        except Exception as exc:
            guard.failed(pending, exc)
            raise
        content = response.read() if pending.live else None
        guard.after(pending, response.status_code, content)
        return _masked(response, content, guard)

    return handle


def _prehook(
    check: Callable[[Any], None],
) -> Callable[[Callable[..., Any], bool], Callable[..., Any]]:
    """Transport wrappers that call ``check(request)`` before passing the request on."""

    def make(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        if is_async:

            async def handle_async(transport: Any, request: Any) -> Any:
                check(request)
                return await original(transport, request)

            return handle_async

        def handle(transport: Any, request: Any) -> Any:
            check(request)
            return original(transport, request)

        return handle

    return make


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


def guarded(guard: TransportGuard) -> contextlib.AbstractContextManager[None]:
    return patch_transports(lambda original, is_async: _wrap(guard, original, is_async))


def blocker(
    nodeid: str, abort: Callable[[BaseException], NoReturn]
) -> contextlib.AbstractContextManager[None]:
    """``--imagegen-block-network``: image requests from unmarked tests fail, unsent."""

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

    return patch_transports(_prehook(check))


def rerouted(route: FakeRoute) -> contextlib.AbstractContextManager[None]:
    """``--imagegen-fake-server`` for the whole session: images and chat requests of any
    test (marked or not, whatever base URL its client names) go to the fake server."""
    return patch_transports(_prehook(lambda request: route.apply(request, _raise, strict=False)))
