"""The HTTP seam of the Python API: requests of httpx and httpx2 (the HTTP library of
openai >= 3) as they leave, whatever client a test uses.

The transport methods of both are wrapped on top of vcrpy's own patches, so the
guard (:mod:`.guard`) sees each request before vcrpy replays or records it;
``--imagegen-block-network`` and ``--imagegen-fake-server`` use the same seam.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from ..api.errors import CassetteError
from ..api.providers import classify, origin
from ..api.redact import Redactor
from ..api.transfer import (
    DeadlineExceeded,
    ResponseTooLarge,
    aread_body,
    decoded_copy,
    read_body,
)

LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
#: (module, class, method, is_async) of the transports to wrap
TRANSPORTS = (
    ("httpx", "HTTPTransport", "handle_request", False),
    ("httpx", "AsyncHTTPTransport", "handle_async_request", True),
    ("httpx2", "HTTPTransport", "handle_request", False),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request", True),
)


def is_images_request(method: str, path: str) -> bool:
    """A request that makes images: the Images API (OpenAI, Azure), Gemini's
    ``generateContent``, or a Responses API call (which may call the image tool)."""
    route = classify(method, path)
    return route is not None and route.kind in ("image", "responses")


def request_kind(method: str, path: str) -> str | None:
    """``image``, ``responses`` or ``judge`` (a chat call) for requests that cost
    (the provider registry knows the routes: :func:`pytest_imagegen.api.providers.classify`)."""
    route = classify(method, path)
    return route.kind if route is not None else None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _raise(exc: BaseException) -> NoReturn:
    raise exc


CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie")


@dataclass(frozen=True)
class FakeRoute:
    """``--imagegen-fake-server``: every request that may cost (images on any provider route,
    Responses, chat) goes to the fake server, on the same route.

    ``strict`` (tests marked ``imagegen``) also refuses, unsent, any other request
    to a host that is not on this machine.
    """

    base_url: str  # the fake server's, ending in /v1
    key: str = "fake-server-key"  # the only credential the fake server ever sees

    def apply(self, request: Any, abort: Callable[[BaseException], NoReturn], strict: bool) -> None:
        url = request.url
        path = str(url.path)
        route = classify(str(request.method), path)
        if route is not None:
            target = type(url)(origin(self.base_url) + route.fake_path)
            params = [(k, v) for k, v in url.params.multi_items() if k.lower() != "key"]
            if params:  # api-version stays; a Gemini ?key= never leaves the process
                target = target.copy_with(params=params)
            request.url = target
            request.headers["Host"] = target.netloc.decode("ascii")
            for name in CREDENTIAL_HEADERS:  # the test's real key never leaves the process
                if name in request.headers:
                    del request.headers[name]
            request.headers["Authorization"] = f"Bearer {self.key}"
            return
        if strict and not is_loopback(str(url.host)):
            abort(
                CassetteError(
                    f"{request.method} {url.scheme}://{url.host}{path} was not sent: with "
                    "--imagegen-fake-server nothing may leave this machine (images, Responses "
                    "and chat requests go to the fake server; this is none of them)"
                )
            )


class TransportGuard(Protocol):
    """What :func:`guarded` needs of a guard (see :class:`.guard.Guard`)."""

    @property
    def redactor(self) -> Redactor: ...

    @property
    def max_bytes(self) -> int: ...

    def before(self, request: Any, content: bytes) -> Any: ...

    def after(self, pending: Any, status: int, content: bytes) -> None: ...

    def failed(self, pending: Any, exc: BaseException) -> None: ...

    def record(self, request: Any, content: bytes, response: Any, body: bytes) -> None: ...

    def sending(self, pending: Any) -> Any: ...

    def sent(self, slot: Any) -> None: ...

    def too_large(self, pending: Any, exc: BaseException) -> NoReturn: ...


def _true_method(cls: Any, method: str) -> Callable[..., Any]:
    """The transport's own method, under any wrapper that names what it wraps (vcrpy's)."""
    fn = cls.__dict__.get(method, getattr(cls, method))
    while getattr(fn, "__wrapped__", None) is not None:
        fn = fn.__wrapped__
    return fn  # type: ignore[no-any-return]


def _masked(response: Any, content: bytes, redactor: Redactor) -> bytes:
    """An error answer that echoes an API key, with the key masked (the SDK's exception
    message, the terminal and JUnit then never see it)."""
    if response.status_code < 400 or not content:
        return content
    text = content.decode("utf-8", "replace")
    return redactor.mask(text).encode("utf-8") if redactor.find(text) else content


def _timeout_error(transport: Any, message: str, request: Any) -> BaseException:
    """The httpx flavour's own ReadTimeout, which SDKs treat as a timeout (and may retry)."""
    flavour = importlib.import_module(type(transport).__module__.split(".")[0])
    error: BaseException = flavour.ReadTimeout(message, request=request)
    return error


def _wrap(
    guard: TransportGuard,
    original: Callable[..., Any],
    real: Callable[..., Any],
    is_async: bool,
) -> Callable[..., Any]:
    """A transport method that sends paid requests itself, through the pipeline: the guard
    decides, the exchange has one deadline and a size cap, and the answer is appended to
    the open vcrpy cassette. Replays and free requests go to ``original`` (vcrpy's)."""
    if is_async:

        async def handle_async(transport: Any, request: Any) -> Any:
            content = await request.aread()
            pending = guard.before(request, content)
            if pending is None or not pending.live:
                return await original(transport, request)
            with _exchange(guard, pending, transport, request):
                response = await real(transport, request)
                body = await aread_body(
                    response, pending.deadline, guard.max_bytes, request=request
                )
            return _answered(guard, pending, request, content, response, body)

        return handle_async

    def handle(transport: Any, request: Any) -> Any:
        content = request.read()
        pending = guard.before(request, content)
        if pending is None or not pending.live:
            return original(transport, request)
        with _exchange(guard, pending, transport, request):
            response = real(transport, request)
            body = read_body(response, pending.deadline, guard.max_bytes, request=request)
        return _answered(guard, pending, request, content, response, body)

    return handle


@contextlib.contextmanager
def _exchange(guard: TransportGuard, pending: Any, transport: Any, request: Any) -> Iterator[None]:
    """One live attempt of a sync or async transport: a limiter slot while it is out, its
    deadline on the request, and a failure booked by outcome (an overlong answer at list
    cost, a deadline as the flavour's own ReadTimeout)."""
    slot = guard.sending(pending)
    try:
        pending.deadline.clip(request.extensions)
        yield
    except ResponseTooLarge as exc:
        guard.too_large(pending, exc)
    except DeadlineExceeded as exc:
        guard.failed(pending, exc)
        raise _timeout_error(transport, str(exc), request) from None
    except Exception as exc:
        guard.failed(pending, exc)
        raise
    finally:
        guard.sent(slot)


def _answered(
    guard: TransportGuard, pending: Any, request: Any, content: bytes, response: Any, body: bytes
) -> Any:
    """A read answer: a key it echoes masked, appended to the cassette, booked, and handed
    on as a response whose body is already read."""
    body = _masked(response, body, guard.redactor)
    guard.record(request, content, response, body)
    guard.after(pending, response.status_code, body)
    return decoded_copy(response, body, request)


def _prehook(
    check: Callable[[Any], None],
) -> Callable[[Callable[..., Any], Callable[..., Any], bool], Callable[..., Any]]:
    """Transport wrappers that call ``check(request)`` before passing the request on."""

    def make(
        original: Callable[..., Any], real: Callable[..., Any], is_async: bool
    ) -> Callable[..., Any]:
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
    make: Callable[[Callable[..., Any], Callable[..., Any], bool], Callable[..., Any]],
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
            setattr(cls, method, make(original, _true_method(cls, method), is_async))
        yield
    finally:
        for cls, method, original in reversed(saved):
            setattr(cls, method, original)


def guarded(guard: TransportGuard) -> contextlib.AbstractContextManager[None]:
    return patch_transports(lambda original, real, is_async: _wrap(guard, original, real, is_async))


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
