"""HTTP clients the guard does not record or price: their image API calls are refused.

The Python API guards httpx and httpx2 (the openai SDK's default clients). A paid call
made with ``requests``, ``urllib``, ``http.client`` or aiohttp (also the openai SDK's
``DefaultAioHttpClient``) would pass the ceiling, the budget and the ledger by; while a
marked test runs, and for the whole session with ``--imagegen-fake-server`` (which could
not reroute it, so the test's real key would leave the machine), such a call fails
unsent, saying what to use instead. Calls that cost nothing go through untouched.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

from ..api.errors import CassetteError
from ..api.providers import classify

FIX = (
    "make the call with httpx or the openai SDK's default client (they are recorded, priced "
    "and replayed); nothing was sent"
)


def _refusal(method: str, url: str, client: str, why: str) -> CassetteError:
    return CassetteError(f"{method} {url} through {client} was not sent: {why}; {FIX}")


@contextlib.contextmanager
def refused(
    why: str, abort: Callable[[BaseException], NoReturn], *, loopback_ok: bool = False
) -> Iterator[None]:
    """While open, image API calls through http.client (urllib, requests, urllib3) and
    aiohttp fail unsent with ``abort``; ``loopback_ok``: calls to this machine go through."""
    import http.client

    saved: list[tuple[Any, str, Any]] = []

    def blocked(method: str, host: str, path: str) -> bool:
        if classify(method, urlsplit(path).path or path) is None:
            return False
        return not (loopback_ok and _loopback(host))

    original_putrequest = http.client.HTTPConnection.putrequest

    def putrequest(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if blocked(method, str(self.host), url):
            where = f"{self.host}:{self.port}"
            abort(_refusal(method, f"http://{where}{url}", "http.client / requests", why))
        return original_putrequest(self, method, url, *args, **kwargs)

    saved.append((http.client.HTTPConnection, "putrequest", original_putrequest))
    http.client.HTTPConnection.putrequest = putrequest  # type: ignore[method-assign]
    try:
        aiohttp = importlib.import_module("aiohttp")
    except ImportError:
        aiohttp = None
    if aiohttp is not None:
        original_request = aiohttp.ClientSession._request

        async def _request(self: Any, method: str, str_or_url: Any, *a: Any, **k: Any) -> Any:
            url = str(str_or_url)
            parts = urlsplit(url)
            if blocked(method, parts.hostname or "", parts.path):
                abort(_refusal(method, url, "aiohttp", why))
            return await original_request(self, method, str_or_url, *a, **k)

        saved.append((aiohttp.ClientSession, "_request", original_request))
        aiohttp.ClientSession._request = _request
    try:
        yield
    finally:
        for cls, name, original in reversed(saved):
            setattr(cls, name, original)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")
