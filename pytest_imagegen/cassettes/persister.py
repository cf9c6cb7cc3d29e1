"""vcrpy glue: the persister that writes image sidecars and refuses secrets, and the
cassette context for replay or recording (also for responses kept without vcrpy)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..api.errors import CassetteError
from ..api.redact import Redactor
from ..api.responses import Exchange
from .files import UnsafePath, atomic_write, check_inside, shown
from .format import (
    CASSETTE_FORMAT,
    DAMAGE,
    DATA_URL_RE,
    MARKER,
    MARKER_RE,
    SECRET_HEADERS,
    SECRET_QUERY_PARAMS,
    body_matcher,
    canonical_json,
    damaged,
    fingerprint,
    load_yaml,
    route_matcher,
    why,
)
from .paths import owning_root
from .pending import keep_pending
from .store import ImageStore, image_extension


def _header_items(headers: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            yield str(name), str(value)


class Persister:
    """vcrpy persister writing image sidecars and refusing to write secrets.

    ``meta`` (set before the cassette is saved) is stored under ``imagegen:``;
    with ``fresh=True`` an existing file is ignored on load, so recording
    replaces it instead of appending to it.
    """

    def __init__(
        self,
        images: ImageStore,
        secrets: Redactor | Iterable[str],
        *,
        fix: str,
        fresh: bool = False,
        pending_dir: Path | None = None,
    ) -> None:
        self.images = images
        self.redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
        self.fix = fix
        self.fresh = fresh
        self.meta: dict[str, Any] = {}
        self.request_body: Mapping[str, Any] | None = None
        self.loaded_meta: dict[str, Any] = {}
        self.saved = False
        self.pending_dir: Path | None = pending_dir  # where a paid answer is kept if writing fails
        self.kept: Path | None = None
        # new_episodes for tests' own code: keep only interactions whose body was used
        self.keep: set[str] | None = None

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Values that must never be written (too short to search for reliably: skipped)."""
        self.redactor.add(*secrets)

    # vcrpy calls these two
    def load_cassette(
        self, cassette_path: str | Path, serializer: Any
    ) -> tuple[list[Any], list[Any]]:
        from vcr.persisters.filesystem import CassetteNotFoundError
        from vcr.request import Request

        path = Path(cassette_path)
        if self.fresh or not path.is_file():
            raise CassetteNotFoundError()
        data = load_yaml(path, self.fix)
        meta = data.get("imagegen")
        self.loaded_meta = meta if isinstance(meta, dict) else {}
        requests, responses = [], []
        for interaction in data["interactions"]:
            try:
                requests.append(
                    Request._from_dict(self._restore_request(dict(interaction["request"]), path))
                )
                responses.append(self._restore(dict(interaction["response"]), path))
            except DAMAGE as exc:
                raise damaged(path, f"a malformed interaction ({why(exc)})", self.fix) from None
        return requests, responses

    def save_cassette(
        self, cassette_path: str | Path, cassette_dict: Mapping[str, Any], serializer: Any
    ) -> None:
        from vcr.serializers import compat

        path = Path(cassette_path)
        plain = []
        for request, response in zip(
            cassette_dict["requests"], cassette_dict["responses"], strict=True
        ):
            if (
                self.keep is not None
                and request.method == "POST"
                and fingerprint(request.body or b"") not in self.keep
            ):
                continue  # a stale request replaced by this run
            plain.append(
                {
                    "request": compat.convert_to_unicode(request._to_dict()),
                    "response": compat.convert_to_unicode(dict(response)),
                }
            )
        self.write(path, plain, serializer)

    def write(self, path: Path, plain: list[dict[str, Any]], serializer: Any = None) -> None:
        """Write interactions (images inline) as a cassette: images as sidecars first, then
        the YAML. A paid answer is never thrown away: when the cassette cannot be written
        (a full disk, a read-only folder), it is kept whole in the project's
        ``.imagegen/pending/`` and the next run uses it instead of paying again."""
        if serializer is None:
            from vcr.serializers import yamlserializer

            serializer = yamlserializer
        body = self.request_body
        if body is None:
            body = next(
                (
                    json.loads(canonical_json(i["request"].get("body") or b""))
                    for i in plain
                    if i["request"].get("method") == "POST"
                ),
                {},
            )
        header = f"# pytest-imagegen cassette; request sha256={fingerprint(body)}\n"
        plain = [
            {
                "request": self._plain_request(i["request"]),
                "response": self._plain_answer(i["response"]),
            }
            for i in plain
        ]
        try:
            check_inside(path.parent, owning_root(path))  # a symlinked folder out: refused
        except UnsafePath as exc:
            raise CassetteError(
                f"cassette {shown(path)} was not written: {exc}; nothing is written outside "
                "the suite's folder (replace the symlink by a real folder)"
            ) from None
        try:
            interactions: list[dict[str, Any]] = []
            image_refs: list[str] = []
            for item in plain:
                interactions.append(
                    {
                        "request": self._externalize_request(dict(item["request"])),
                        "response": self._externalize(dict(item["response"]), image_refs),
                    }
                )
            data: dict[str, Any] = {
                "version": 1,
                "interactions": interactions,
                "imagegen": {"format": CASSETTE_FORMAT, **self.meta, "images": image_refs},
            }
            text = serializer.serialize(data)
            self._refuse_secrets(path, text)
            note = "# image bytes live in ../images/<sha256>.<ext>; re-record instead of editing\n"
            # images were written by _externalize already: the YAML comes last
            atomic_write(path, (header + note + text).encode("utf-8"))
        except OSError as exc:
            if self.pending_dir is None:
                raise
            inline = serializer.serialize(
                {
                    "version": 1,
                    "interactions": plain,
                    "imagegen": {"format": CASSETTE_FORMAT, **self.meta},
                }
            )
            self._refuse_secrets(path, inline)
            kept = keep_pending(self.pending_dir, path, header + inline)
            self.kept = kept
            raise CassetteError(
                f"the cassette {shown(path)} could not be written ({exc.strerror or exc}); the "
                f"paid answer is kept in {shown(kept)} and the next run uses it instead of "
                "paying again (fix the folder, then run again)"
            ) from None
        self.saved = True

    # helpers
    def _plain_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A recorded request keeps no header but its content type: matching never looks
        at headers, and a gateway's own credential header (Helicone-Auth, X-Gateway-Key, …)
        must not reach the repository."""
        out = dict(request)
        headers = out.get("headers") or {}
        out["headers"] = (
            {k: v for k, v in headers.items() if str(k).lower() == "content-type"}
            if isinstance(headers, Mapping)
            else {}
        )
        return out

    def _plain_answer(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """A paid answer that echoes a key (a header, the body) is kept with the key masked:
        refusing it would make every run pay again."""
        out = dict(response)
        mask = self.redactor.mask
        headers = out.get("headers") or {}
        if isinstance(headers, Mapping):
            out["headers"] = {
                k: [mask(str(v)) for v in (vs if isinstance(vs, list) else [vs])]
                for k, vs in headers.items()
            }
        body = out.get("body")
        content = body.get("string") if isinstance(body, Mapping) else None
        if isinstance(content, str) and self.redactor.find(content):
            out["body"] = {**body, "string": mask(content)}  # type: ignore[dict-item]
        elif isinstance(content, bytes) and content[:1] in b"{[" and self.redactor:
            text = content.decode("utf-8", "replace")
            if self.redactor.find(text):
                out["body"] = {**body, "string": mask(text).encode("utf-8")}  # type: ignore[dict-item]
        return out

    def _externalize(self, response: dict[str, Any], refs: list[str]) -> dict[str, Any]:
        body = response.get("body") or {}
        content = body.get("string")
        if isinstance(content, (bytes, bytearray)):
            data = bytes(content)
            if image_extension(data) != "bin":
                ref = self.images.put(data)
                refs.append(ref)
                response["body"] = {"string": MARKER + ref}
            return response
        if not isinstance(content, str):
            return response
        from .sidecars import image_strings

        for b64, data in image_strings(content):  # images answer, stream, Gemini, Responses
            ref = self.images.put(data)
            refs.append(ref)
            content = content.replace(b64, MARKER + ref)
        response["body"] = {"string": content}
        return response

    def _externalize_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Images a request sends as data URLs (a vision judge's input) become sidecars; a
        multipart edit is stored as its description (fields and files' sha256), never the
        files themselves (they stay where they are)."""
        body = request.get("body")
        if isinstance(body, (bytes, bytearray)) and body.startswith(b"--"):
            request["body"] = canonical_json(bytes(body))
            return request
        if isinstance(body, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                body = body.decode("utf-8")
        if not isinstance(body, str) or "data:image/" not in body:
            return request

        def stash(m: re.Match[str]) -> str:
            try:
                data = base64.b64decode(m.group(2), validate=True)
            except ValueError:
                return m.group(0)
            if base64.b64encode(data).decode("ascii") != m.group(2):
                return m.group(0)  # not canonical: keep inline so matching stays exact
            return f"data:{m.group(1)};base64,{MARKER}{self.images.put(data)}"

        request["body"] = DATA_URL_RE.sub(stash, body)
        return request

    def _restore_request(self, request: dict[str, Any], path: Path) -> dict[str, Any]:
        body = request.get("body")
        if isinstance(body, str) and MARKER in body:

            def put_back(m: re.Match[str]) -> str:
                raw = self.images.get(m.group(1), m.group(2), cassette=path, fix=self.fix)
                return base64.b64encode(raw).decode("ascii")

            request["body"] = MARKER_RE.sub(put_back, body)
        return request

    def _restore(self, response: dict[str, Any], path: Path) -> dict[str, Any]:
        body = response.get("body") or {}
        content = body.get("string")
        if isinstance(content, str) and MARKER in content:
            whole = MARKER_RE.fullmatch(content)
            if whole:
                data: bytes = self.images.get(
                    whole.group(1), whole.group(2), cassette=path, fix=self.fix
                )
                response["body"] = {"string": data}
                return response

            def put_back(m: re.Match[str]) -> str:
                raw = self.images.get(m.group(1), m.group(2), cassette=path, fix=self.fix)
                return base64.b64encode(raw).decode("ascii")

            content = MARKER_RE.sub(put_back, content)
            response["body"] = {"string": content.encode("utf-8")}
            return response
        if isinstance(content, str):
            response["body"] = {"string": content.encode("utf-8")}
        return response

    def _refuse_secrets(self, path: Path, text: str) -> None:
        found = self.redactor.find(text)
        if found:
            raise CassetteError(
                f"refused to write cassette {shown(path)}: it would contain {found}. "
                "Nothing was written. Pass the key only in the Authorization header "
                "(it is scrubbed), not in the URL, another header or the body."
            )


def _scrub_response(response: dict[str, Any]) -> dict[str, Any] | None:
    status = response.get("status") or {}
    if int(status.get("code", 200)) >= 400:
        return None  # error responses are never recorded
    headers = response.get("headers") or {}
    response["headers"] = {k: v for k, v in headers.items() if str(k).lower() not in SECRET_HEADERS}
    return response


class _SavedAfterUnpatching:
    """What vcrpy is given as its persister: a save that fails is kept, not raised.

    vcrpy's ``Cassette.__exit__`` saves *before* it undoes its patches of httpx, httpx2 and
    http.client; a save that raised there (a refused secret, a full disk, Ctrl-C) left them
    in place, holding that session's cassette and persister, until the garbage collector
    closed them, at any later moment, in whatever session ran then, putting back the
    transports of before and with them removing that session's cassette and guard.
    :func:`open_cassette` raises the kept error once vcrpy has unpatched.
    """

    def __init__(self, persister: Persister) -> None:
        self.persister = persister
        self.error: BaseException | None = None

    def load_cassette(
        self, cassette_path: str | Path, serializer: Any
    ) -> tuple[list[Any], list[Any]]:
        return self.persister.load_cassette(cassette_path, serializer)

    def save_cassette(
        self, cassette_path: str | Path, cassette_dict: Mapping[str, Any], serializer: Any
    ) -> None:
        try:
            self.persister.save_cassette(cassette_path, cassette_dict, serializer)
        except BaseException as exc:  # raised by open_cassette, after vcrpy has unpatched
            self.error = exc


@contextlib.contextmanager
def open_cassette(
    path: Path,
    persister: Persister,
    *,
    record: bool = False,
    mode: str | None = None,
    record_on_exception: bool = False,
) -> Iterator[Any]:
    """A vcrpy cassette context: replay only (no network), record afresh, or ``mode``.

    On leaving it, vcrpy's patches are always undone first; an error saving the cassette
    is raised after that (see :class:`_SavedAfterUnpatching`).
    """
    import vcr

    saver = _SavedAfterUnpatching(persister)
    recorder = vcr.VCR(
        serializer="yaml",
        match_on=["method", "imagegen_route", "imagegen_body"],
        filter_headers=list(SECRET_HEADERS),
        filter_query_parameters=list(SECRET_QUERY_PARAMS),
        decode_compressed_response=True,
        before_record_response=_scrub_response,
    )
    recorder.register_matcher("imagegen_body", body_matcher)
    recorder.register_matcher("imagegen_route", route_matcher)
    # register_persister: honoured by every vcrpy (use_cassette(persister=) only from 9.1)
    recorder.register_persister(saver)
    try:
        with recorder.use_cassette(
            str(path),
            record_mode=mode or ("all" if record else "none"),
            allow_playback_repeats=False,
            # suites: a failed call leaves no (partial) cassette; tests' own code: what was
            # recorded before the test failed is kept (it was paid for)
            record_on_exception=record_on_exception,
        ) as cassette:
            yield cassette
    finally:
        error, saver.error = saver.error, None
        if error is not None:
            raise error


def save_exchanges(path: Path, persister: Persister, exchanges: list[Exchange]) -> None:
    """Write a cassette from the exchanges our client read (suite recording, serial or
    concurrent, never through vcrpy), in the format vcrpy writes: secret headers and
    secret query parameters dropped, images as sidecars."""
    dropped = (*SECRET_HEADERS, "content-encoding", "content-length", "transfer-encoding")
    plain = []
    for exchange in exchanges:
        content: str | bytes = exchange.content
        with contextlib.suppress(UnicodeDecodeError):  # JSON, an event stream: text
            if image_extension(exchange.content) == "bin":
                content = exchange.content.decode("utf-8")
        if isinstance(content, str):
            content = strip_secret_urls(content)
        headers: dict[str, list[str]] = {}
        for k, v in exchange.headers:
            if k.lower() not in dropped:
                headers.setdefault(k, []).append(v)
        plain.append(
            {
                "request": {
                    "method": exchange.method,
                    "uri": strip_query(exchange.url),
                    "body": exchange.body,
                    "headers": {"Content-Type": [exchange.content_type]}
                    if exchange.content_type
                    else {},
                },
                "response": {
                    "status": {"code": exchange.status, "message": exchange.reason},
                    "headers": headers,
                    "body": {"string": content},
                },
            }
        )
    persister.write(path, plain)


def strip_query(url: str) -> str:
    """``url`` without its secret query parameters (a download URL's ``token=``)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in SECRET_QUERY_PARAMS]  # fmt: skip
    return urlunsplit(parts._replace(query=urlencode(kept)))


_URL_RE = re.compile(r'"url"\s*:\s*"([^"]+)"')


def strip_secret_urls(text: str) -> str:
    """The image URLs of an answer without their secret query parameters."""
    return _URL_RE.sub(lambda m: m.group(0).replace(m.group(1), strip_query(m.group(1))), text)


def promote(kept: Path, path: Path, persister: Persister) -> None:
    """Write the cassette ``path`` from a paid answer an earlier run kept (its cassette could
    not be written then), then drop the kept copy: nothing is paid twice."""
    data = load_yaml(kept, persister.fix)
    meta = data.get("imagegen")
    persister.meta = {
        k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if k != "format"
    }
    persister.write(path, list(data["interactions"]))
    kept.unlink(missing_ok=True)
