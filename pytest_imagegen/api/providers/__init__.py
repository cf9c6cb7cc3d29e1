"""Provider shapes (SPEC §19): how one images request looks on the wire, per provider.

Everything above ``api/`` thinks in *descriptions*: a request as the case fields
``{model, prompt, n, size, quality?, ...params}`` (what is priced, fingerprinted,
diffed and written to the ledger). A :class:`Provider` turns a description into
the request it sends (URL, body, auth header) and reads the answer back
(:func:`read_answer`: images and usage, whatever the shape). Three shapes:

* ``openai``: ``POST {base}/images/generations`` (and ``/images/edits``), Bearer key;
* ``azure``: ``POST {endpoint}/openai/deployments/{deployment}/images/...?api-version=``,
  key in ``api-key`` (the case's ``model`` names the deployment);
* ``gemini``: ``POST {root}/v1beta/models/{model}:generateContent``, key in
  ``x-goog-api-key``; images in ``inlineData``, usage in ``usageMetadata``.

:func:`classify` tells, from a request's method and path, which route a request
of a test's own code takes (the guard, the fake-server route and cassette
matching use it), and :func:`match_path` is the part of the path cassette
matching compares: from the provider's own suffix on, so a gateway's path prefix,
the host and ``api-version`` never invalidate a cassette.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from ..errors import ConfigError
from .read import read_answer

PROVIDERS = ("openai", "azure", "gemini")
DEFAULT_AZURE_API_VERSION = "2025-04-01-preview"


@dataclass(frozen=True)
class ProviderSettings:
    """What the provider shapes need from the ini file (SPEC §19)."""

    default: str = "openai"  # ini imagegen_provider
    azure_endpoint: str | None = None  # ini imagegen_azure_endpoint (default: the base URL's host)
    azure_api_version: str = DEFAULT_AZURE_API_VERSION  # ini imagegen_azure_api_version
    deployments: Mapping[str, str] = field(default_factory=dict)  # ini imagegen_deployments
    gemini_base_url: str | None = None  # ini imagegen_gemini_base_url (default: the host)

    def azure_root(self, base_url: str) -> str:
        return (self.azure_endpoint or origin(base_url)).rstrip("/")

    def gemini_root(self, base_url: str) -> str:
        return (self.gemini_base_url or origin(base_url)).rstrip("/")

    def local(self) -> ProviderSettings:
        """The same settings with every route derived from the base URL (the fake server)."""
        return ProviderSettings(self.default, None, self.azure_api_version, self.deployments)


def origin(url: str) -> str:
    """The scheme and host (and port) of ``url``: ``https://api.wisgate.ai``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def provider_settings(getini: Callable[[str], Any]) -> ProviderSettings:
    """The provider settings of the ini file (SPEC §19), validated (``ConfigError``)."""
    default = str(getini("imagegen_provider") or "openai").strip()
    if default not in PROVIDERS:
        raise ConfigError(
            f"ini imagegen_provider: {default!r} is not a provider; allowed: {', '.join(PROVIDERS)}"
        )
    urls = {}
    for key in ("imagegen_azure_endpoint", "imagegen_gemini_base_url"):
        value = str(getini(key) or "").strip()
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"ini {key}: {value!r} is not an http(s) URL")
        urls[key] = value.rstrip("/") or None
    version = str(getini("imagegen_azure_api_version") or "").strip()
    return ProviderSettings(
        default=default,
        azure_endpoint=urls["imagegen_azure_endpoint"],
        azure_api_version=version or DEFAULT_AZURE_API_VERSION,
        deployments=parse_deployments(str(getini("imagegen_deployments") or "")),
        gemini_base_url=urls["imagegen_gemini_base_url"],
    )


def parse_deployments(text: str) -> dict[str, str]:
    """ini ``imagegen_deployments = name=model ...`` (spaces or new lines between pairs)."""
    out: dict[str, str] = {}
    for item in text.split():
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise ConfigError(
                f"ini imagegen_deployments: {item!r} is not name=model; write each Azure "
                "deployment as `deployment-name=priced-model`, e.g. `prod-image=gpt-image-2`"
            )
        out[name] = model
    return out


def resolve(
    model: str, conf: ProviderSettings, priced: str | None, explicit: str | None = None
) -> str:
    """The provider of a request (SPEC §19): the one named (a suite's, a case's, a fixture
    call's ``provider``); else ``azure`` for a deployment of ini ``imagegen_deployments``;
    else the one the model's price entry names (``priced``); else ini ``imagegen_provider``."""
    if explicit:
        return explicit
    if model in conf.deployments:
        return "azure"
    return priced or conf.default


@dataclass(frozen=True)
class WireRequest:
    """One provider request: where it goes, its JSON body, what to call it in messages."""

    url: str
    body: dict[str, Any]
    what: str
    auth_header: str  # authorization | api-key | x-goog-api-key


class Provider(Protocol):
    """A request shape: builds the request of a description; knows its auth header."""

    name: str
    auth_header: str
    takes_quality: bool  # does `quality` mean anything to this provider
    takes_edits: bool  # can a case with `image:` be sent

    def request(
        self, base_url: str, conf: ProviderSettings, body: Mapping[str, Any], endpoint: str
    ) -> WireRequest: ...


class OpenAIShape:
    name = "openai"
    auth_header = "authorization"
    takes_quality = True
    takes_edits = True

    def url(self, base_url: str, conf: ProviderSettings, model: str, endpoint: str) -> str:
        return f"{base_url.rstrip('/')}/images/{endpoint}"

    def request(
        self, base_url: str, conf: ProviderSettings, body: Mapping[str, Any], endpoint: str
    ) -> WireRequest:
        url = self.url(base_url, conf, str(body.get("model") or ""), endpoint)
        what = "images request" if endpoint == "generations" else "image edit request"
        return WireRequest(url, dict(body), what, self.auth_header)


class AzureShape(OpenAIShape):
    """Azure OpenAI: the OpenAI body on a deployment's URL, the key in ``api-key``."""

    name = "azure"
    auth_header = "api-key"

    def url(self, base_url: str, conf: ProviderSettings, model: str, endpoint: str) -> str:
        version = quote(conf.azure_api_version, safe="")
        return (
            f"{conf.azure_root(base_url)}/openai/deployments/{quote(model, safe='')}/images/"
            f"{endpoint}?api-version={version}"
        )


class GeminiShape:
    name = "gemini"
    auth_header = "x-goog-api-key"
    takes_quality = False  # Gemini image models have no quality setting
    takes_edits = False

    def request(
        self, base_url: str, conf: ProviderSettings, body: Mapping[str, Any], endpoint: str
    ) -> WireRequest:
        from . import gemini

        model = str(body.get("model") or "")
        url = f"{conf.gemini_root(base_url)}/v1beta/models/{quote(model, safe='')}:generateContent"
        return WireRequest(url, gemini.request_body(body), "Gemini request", self.auth_header)


SHAPES: dict[str, Provider] = {
    "openai": OpenAIShape(),
    "azure": AzureShape(),
    "gemini": GeminiShape(),
}


def get(name: str) -> Provider:
    try:
        return SHAPES[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; allowed: {', '.join(PROVIDERS)}") from None


# ------------------------------------------------------------ routes of requests


@dataclass(frozen=True)
class Route:
    """What a request of a test's own code is, read from its method and path."""

    provider: str  # openai | azure | gemini
    kind: str  # image | judge | responses
    endpoint: str  # generations | edits | variations | chat | responses | generateContent | ...
    model: str | None  # named by the path: an Azure deployment, a Gemini model
    suffix: str  # the part of the path matching compares
    fake_path: str  # where the fake server serves it


_ROUTES: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    # (pattern, provider, kind, fake prefix); group "model" and group "endpoint"
    (
        re.compile(
            r"(?P<s>/openai/deployments/(?P<model>[^/]+)/images/(?P<endpoint>generations|edits|variations))/?$"
        ),
        "azure",
        "image",
        "",
    ),
    (
        re.compile(
            r"(?P<s>/openai/deployments/(?P<model>[^/]+)/chat/(?P<endpoint>completions))/?$"
        ),
        "azure",
        "judge",
        "",
    ),
    (
        re.compile(r"(?P<s>/images/(?P<endpoint>generations|edits|variations))/?$"),
        "openai",
        "image",
        "/v1",
    ),
    (re.compile(r"(?P<s>/chat/(?P<endpoint>completions))/?$"), "openai", "judge", "/v1"),
    (re.compile(r"(?P<s>/(?P<endpoint>responses))/?$"), "openai", "responses", "/v1"),
    (
        re.compile(
            r"(?P<s>/models/(?P<model>[^/:]+):(?P<endpoint>generateContent|streamGenerateContent))$"
        ),
        "gemini",
        "image",
        "/v1beta",
    ),
)


def classify(method: str, path: str) -> Route | None:
    """The route of a request that may cost money (``None``: it costs nothing)."""
    if method.upper() != "POST":
        return None
    for pattern, provider, kind, fake in _ROUTES:
        m = pattern.search(path)
        if m is not None:
            from urllib.parse import unquote

            model = m.groupdict().get("model")
            suffix = m.group("s")
            return Route(
                provider=provider,
                kind=kind,
                endpoint=m.group("endpoint"),
                model=unquote(model) if model else None,
                suffix=suffix,
                fake_path=fake + suffix,
            )
    return None


def match_path(path: str) -> str:
    """What cassette matching compares of a path: a known route from its provider suffix on
    (``/images/generations``, ``/models/gemini-2.5-flash-image:generateContent``, ...), so
    ``/proxy/openai/v1/images/generations`` matches ``/v1/images/generations``; any other
    path as it is."""
    for pattern, *_ in _ROUTES:
        m = pattern.search(path)
        if m is not None:
            return m.group("s")
    return path


__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderSettings",
    "Route",
    "WireRequest",
    "classify",
    "get",
    "match_path",
    "origin",
    "parse_deployments",
    "provider_settings",
    "read_answer",
    "resolve",
]
