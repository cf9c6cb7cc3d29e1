"""Cassettes on vcrpy: prompt-aware matching, image sidecars, no secrets on disk.

A cassette is a vcrpy YAML file (vcrpy tooling reads it) with two additions:

* its first line is a comment with the sha256 of the canonical request body,
  so freshness can be checked by reading one line;
* a top-level ``imagegen:`` mapping (ignored by vcrpy) with the request, the
  list and actual cost of the recording and the image references.

Image bytes never sit in the YAML: each image is stored once, content
addressed, at ``<images dir>/<sha256>.<ext>``; the YAML holds the marker
``imagegen-sha256:<sha256>.<ext>`` where the base64 (or the raw body of a
downloaded ``url`` image) was. Loading puts the exact bytes back after
checking their sha256, so a replayed response is byte-identical to the
recorded one.

Every write is atomic (temp file + rename) and images are written before the
YAML that references them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import APIError, CassetteError
from .files import IMAGE_EXTENSIONS, UnsafePath, atomic_write, check_inside, image_path, shown
from .redact import Redactor

if TYPE_CHECKING:
    from .client import Generation

CASSETTE_FORMAT = 1
MARKER = "imagegen-sha256:"
MARKER_RE = re.compile(r"imagegen-sha256:([0-9a-f]{64})\.(" + "|".join(IMAGE_EXTENSIONS) + ")")
DATA_URL_RE = re.compile(r"data:(image/[a-z0-9.+-]+);base64,([A-Za-z0-9+/]+={0,2})")
HEADER_RE = re.compile(rb"^# pytest-imagegen cassette; request sha256=([0-9a-f]{64})")
SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
    "set-cookie",
)
SECRET_QUERY_PARAMS = ("api-key", "api_key", "key", "access_token", "token")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._=-]+")


# ---------------------------------------------------------------- paths / files


#: longest file stem derived from an id (file systems allow 255 bytes; the temp file of an
#: atomic write adds a prefix and a suffix)
MAX_STEM = 120


def sanitize_id(case_id: str) -> str:
    """A case id as a file stem: ``app-icon[quality=low]`` -> ``app-icon_quality=low``.

    An id that leaves nothing usable (``.``, ``..``, only symbols) or is too long for a
    file name gets a short hash of the whole id instead, so every id can be stored.
    Two ids can still meet on one stem (``a`` and ``_a``): callers detect that
    (:func:`colliding`) and say so before anything is sent.
    """
    safe = _SAFE_ID.sub("_", case_id).strip("_")
    if safe.strip(".") and len(safe) <= MAX_STEM:
        return safe
    digest = hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:12]
    head = safe.strip(".")[: MAX_STEM - 13].rstrip("._-")
    return f"{head or 'case'}-{digest}"


def colliding(ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """(first id, second id, stem) for ids that would share one file stem."""
    seen: dict[str, str] = {}
    out = []
    for case_id in ids:
        stem = sanitize_id(case_id)
        if stem in seen and seen[stem] != case_id:
            out.append((seen[stem], case_id, stem))
        seen.setdefault(stem, case_id)
    return out


def suite_cassette_path(suite_path: Path, case_id: str) -> Path:
    return suite_path.parent / "cassettes" / suite_path.stem / f"{sanitize_id(case_id)}.yaml"


def suite_images_dir(suite_path: Path) -> Path:
    return suite_path.parent / "cassettes" / "images"


def image_extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "bin"


def owning_root(path: Path, folder: str = "cassettes") -> Path:
    """The directory holding the ``cassettes`` (or ``baselines``) folder ``path`` is in."""
    for parent in path.parents:
        if parent.name == folder:
            return parent.parent
    return path.parent


class ImageStore:
    """Content-addressed image files shared by every cassette of a directory.

    The directory is ``<root>/cassettes/images``; no image is read through a
    symlink that leads outside ``<root>``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = owning_root(directory / "x")

    def put(self, data: bytes) -> str:
        """Store ``data`` once; return its reference ``<sha256>.<ext>``."""
        digest = hashlib.sha256(data).hexdigest()
        ref = f"{digest}.{image_extension(data)}"
        path = self.directory / ref
        with contextlib.suppress(OSError):
            if (
                not path.is_symlink()
                and path.stat().st_size == len(data)
                and hashlib.sha256(path.read_bytes()).hexdigest() == digest
            ):
                return ref  # identical image already stored (dedup)
        atomic_write(path, data)  # missing, or damaged: (re)written
        return ref

    def path(self, digest: object, ext: object) -> Path:
        """The file of a (validated) image reference; :class:`UnsafePath` if forged."""
        path = image_path(self.directory, digest, ext)
        check_inside(path, self.root)
        return path

    def get(self, digest: str, ext: str, *, cassette: Path, fix: str) -> bytes:
        try:
            path = self.path(digest, ext)
            data = path.read_bytes()
        except UnsafePath as exc:
            raise CassetteError(
                f"cassette {shown(cassette)} is damaged: an image reference is unsafe ({exc}); "
                f"nothing was read; delete it and {fix}"
            ) from None
        except FileNotFoundError:
            path = self.directory / f"{digest}.{ext}"
            raise CassetteError(
                f"image file {shown(path)} referenced by cassette {shown(cassette)} is missing; {fix}"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise CassetteError(
                f"image file {shown(path)} is corrupt (its sha256 does not match its name); "
                f"delete it and {fix}"
            )
        return data


# ------------------------------------------------------------ matching / diffs


def canonical_json(body: Any) -> str:
    """Canonical text of a JSON request body (sorted keys, no spaces); a multipart body
    (an edit) is described by its text fields and its files' sha256."""
    if isinstance(body, (bytes, bytearray)):
        from .edits import describe_multipart

        described = describe_multipart(bytes(body))
        body = described if described is not None else bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text) if text else None
        except ValueError:
            return text
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(body: Any) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def body_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: request bodies equal as canonical JSON."""
    if canonical_json(r1.body or b"") != canonical_json(r2.body or b""):
        raise AssertionError("request bodies differ")


def _short(value: Any, limit: int = 70) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_bodies(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``field: old → new`` for every field whose value changed (missing shown as unset)."""
    changes = []
    for key in list(dict.fromkeys([*new, *old])):  # in the order the case writes them
        before, after = old.get(key, _UNSET), new.get(key, _UNSET)
        if before != after:
            b = "(unset)" if before is _UNSET else _short(before)
            a = "(unset)" if after is _UNSET else _short(after)
            changes.append(f"{key}: {b} → {a}")
    return changes


_UNSET = object()


# ------------------------------------------------------------------ reading


@dataclass
class CassetteState:
    status: str  # missing | fresh | stale
    changes: list[str]
    meta: dict[str, Any]


def read_fingerprint(path: Path) -> str | None:
    """The request sha256 from a cassette's first line; ``None`` if missing or foreign."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except FileNotFoundError:
        return None
    m = HEADER_RE.match(first)
    return m.group(1).decode() if m else ""


def damaged(path: Path, what: str, fix: str) -> CassetteError:
    """The one message for a cassette that cannot be used as it is."""
    return CassetteError(f"cassette {shown(path)} is damaged: {what}; delete it and {fix}")


def why(exc: BaseException) -> str:
    """A short reason from an exception raised by damaged data (no exception class names)."""
    text = str(exc).strip()
    return text.splitlines()[0][:100] if text else "unexpected content"


#: what reading a damaged file can raise besides our own errors
DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def load_yaml(path: Path, fix: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        check_inside(path, owning_root(path))
        data = yaml.load(path.read_bytes(), Loader=loader)
    except UnsafePath as exc:
        raise CassetteError(f"cassette {shown(path)} was not read: {exc}; {fix}") from None
    except FileNotFoundError:
        raise CassetteError(f"cassette {shown(path)} is missing; {fix}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise damaged(path, f"not valid YAML ({where}{what})", fix) from None
    except (*DAMAGE, RecursionError, UnicodeDecodeError) as exc:  # e.g. a bad !!timestamp
        raise damaged(path, f"unreadable YAML ({why(exc)})", fix) from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise damaged(path, "not a vcrpy cassette (no `interactions` list)", fix)
    return data


def cassette_state(path: Path, body: Mapping[str, Any], fix: str) -> CassetteState:
    """Compare the cassette at ``path`` with the request the case would send now."""
    recorded = read_fingerprint(path)
    if recorded is None:
        return CassetteState("missing", [], {})
    if recorded == fingerprint(body):
        return CassetteState("fresh", [], {})
    data = load_yaml(path, fix)
    meta = data.get("imagegen") or {}
    old = meta.get("request") if isinstance(meta, dict) else None
    if not isinstance(old, dict):
        old = {}
        for interaction in data["interactions"]:
            req = interaction.get("request") if isinstance(interaction, dict) else None
            if isinstance(req, dict) and req.get("method") == "POST":
                with contextlib.suppress(*DAMAGE):
                    loaded = json.loads(req.get("body") or "{}")
                    old = loaded if isinstance(loaded, dict) else {}
                break
    changes = diff_bodies(old, body) or ["the request differs from the recorded one"]
    return CassetteState("stale", changes, meta if isinstance(meta, dict) else {})


def replay_generation(
    path: Path, body: Mapping[str, Any], images: ImageStore, fix: str
) -> tuple[Generation, dict[str, Any]] | None:
    """Replay a suite case straight from its cassette: no HTTP stack, no base64 round trip.

    Gives the same images, revised prompts and usage a replay through vcrpy and
    the images client gives (the tests compare both), plus the cassette's
    ``imagegen`` meta. ``None`` when the cassette has no interaction for
    ``body`` (the caller then takes the vcrpy path, which explains the problem).
    """
    try:
        return _replay_generation(path, body, images, fix)
    except (*DAMAGE, binascii.Error) as exc:
        raise damaged(path, f"its response cannot be read ({why(exc)})", fix) from None
    except APIError as exc:  # the recorded payload is not an images result
        raise damaged(path, str(exc), fix) from None


def _replay_generation(
    path: Path, body: Mapping[str, Any], images: ImageStore, fix: str
) -> tuple[Generation, dict[str, Any]] | None:
    from .client import generation_from_payload

    data = load_yaml(path, fix)
    want = fingerprint(body)
    requests = {}
    post = None
    for interaction in data["interactions"]:
        request = interaction.get("request") if isinstance(interaction, dict) else None
        if not isinstance(request, dict):
            return None
        if request.get("method") == "POST" and post is None:
            if fingerprint(request.get("body") or b"") == want:
                post = interaction
        elif request.get("method") == "GET":
            requests[str(request.get("uri"))] = interaction
    if post is None:
        return None
    try:
        status = int(post["response"]["status"]["code"])
        content = post["response"]["body"]["string"]
        payload = json.loads(content)
    except (KeyError, TypeError, ValueError):
        return None
    if status >= 400:
        return None
    shas: dict[int, str] = {}

    def stored(text: Any, index: int) -> bytes | None:
        m = MARKER_RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            return None
        shas[index] = m.group(1)
        return images.get(m.group(1), m.group(2), cassette=path, fix=fix)

    def fetch(index: int, item: Mapping[str, Any]) -> tuple[bytes, str]:
        b64 = item.get("b64_json")
        if b64:
            raw = stored(b64, index)
            return (raw if raw is not None else base64.b64decode(b64, validate=True)), "b64_json"
        download = requests.get(str(item.get("url")))
        if download is not None:
            raw = stored((download["response"].get("body") or {}).get("string"), index)
            if raw is not None:
                return raw, "url"
        raise CassetteError(f"cassette {shown(path)} lacks image {index} of its response; {fix}")

    generation = generation_from_payload(payload, fetch)
    for index, sha in shas.items():
        generation.images[index].sha256 = sha
    meta = data.get("imagegen")
    return generation, meta if isinstance(meta, dict) else {}


def add_judge(
    path: Path,
    judge_meta: Mapping[str, Any],
    interactions: list[dict[str, Any]],
    redactor: Redactor,
    fix: str,
) -> bool:
    """Put the judge's verdicts and chat interactions into the case's cassette, replacing
    earlier ones (the image interaction stays). ``False`` when there is no cassette (its
    writing was refused): the verdicts then count for this run only."""
    import yaml

    if not path.is_file():
        return False
    data = load_yaml(path, fix)
    header = "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:2])
    kept = [
        i
        for i in data["interactions"]
        if not (
            isinstance(i, dict) and "/chat/completions" in str((i.get("request") or {}).get("uri"))
        )
    ]
    data["interactions"] = kept + interactions
    meta = data.get("imagegen")
    data["imagegen"] = {**(meta if isinstance(meta, dict) else {}), "judge": dict(judge_meta)}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(data, Dumper=dumper)
    found = redactor.find(text)
    if found:
        raise CassetteError(
            f"refused to write the judge into cassette {shown(path)}: it would contain {found}. "
            "Nothing was written."
        )
    atomic_write(path, (header + text).encode("utf-8"))
    return True


def recorded_meta(path: Path, fix: str) -> dict[str, Any]:
    meta = load_yaml(path, fix).get("imagegen")
    return meta if isinstance(meta, dict) else {}


# ---------------------------------------------------------------- persister


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
    ) -> None:
        self.images = images
        self.redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
        self.fix = fix
        self.fresh = fresh
        self.meta: dict[str, Any] = {}
        self.request_body: Mapping[str, Any] | None = None
        self.loaded_meta: dict[str, Any] = {}
        self.saved = False
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
        interactions = []
        image_refs: list[str] = []
        for request, response in zip(
            cassette_dict["requests"], cassette_dict["responses"], strict=True
        ):
            if (
                self.keep is not None
                and request.method == "POST"
                and fingerprint(request.body or b"") not in self.keep
            ):
                continue  # a stale request replaced by this run
            response = self._externalize(compat.convert_to_unicode(dict(response)), image_refs)
            interactions.append(
                {
                    "request": self._externalize_request(
                        compat.convert_to_unicode(request._to_dict())
                    ),
                    "response": response,
                }
            )
        data: dict[str, Any] = {
            "version": 1,
            "interactions": interactions,
            "imagegen": {"format": CASSETTE_FORMAT, **self.meta, "images": image_refs},
        }
        text = serializer.serialize(data)
        self._refuse_secrets(path, text)
        body = self.request_body
        if body is None:
            body = next(
                (
                    json.loads(i["request"]["body"])
                    for i in interactions
                    if i["request"]["method"] == "POST"
                ),
                {},
            )
        header = f"# pytest-imagegen cassette; request sha256={fingerprint(body)}\n"
        header += "# image bytes live in ../images/<sha256>.<ext>; re-record instead of editing\n"
        # images were written by _externalize already: the YAML comes last
        atomic_write(path, (header + text).encode("utf-8"))
        self.saved = True

    # helpers
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
        if not isinstance(content, str) or '"b64_json"' not in content:
            return response
        try:
            payload = json.loads(content)
        except ValueError:
            return response
        for item in payload.get("data") or []:
            b64 = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(b64, str) or b64 not in content:
                continue
            try:
                data = base64.b64decode(b64, validate=True)
            except ValueError:
                continue
            if base64.b64encode(data).decode("ascii") != b64:
                continue  # not canonical base64: keep inline so replay stays byte-exact
            ref = self.images.put(data)
            refs.append(ref)
            content = content.replace(b64, MARKER + ref, 1)
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


# ------------------------------------------------------------------ vcr glue


def _scrub_response(response: dict[str, Any]) -> dict[str, Any] | None:
    status = response.get("status") or {}
    if int(status.get("code", 200)) >= 400:
        return None  # error responses are never recorded
    headers = response.get("headers") or {}
    response["headers"] = {k: v for k, v in headers.items() if str(k).lower() not in SECRET_HEADERS}
    return response


def open_cassette(
    path: Path,
    persister: Persister,
    *,
    record: bool = False,
    mode: str | None = None,
    record_on_exception: bool = False,
) -> Any:
    """A vcrpy cassette context: replay only (no network), record afresh, or ``mode``."""
    import vcr

    recorder = vcr.VCR(
        serializer="yaml",
        match_on=["method", "path", "imagegen_body"],
        filter_headers=list(SECRET_HEADERS),
        filter_query_parameters=list(SECRET_QUERY_PARAMS),
        decode_compressed_response=True,
        before_record_response=_scrub_response,
    )
    recorder.register_matcher("imagegen_body", body_matcher)
    # register_persister: honoured by every vcrpy (use_cassette(persister=) only from 9.1)
    recorder.register_persister(persister)
    return recorder.use_cassette(
        str(path),
        record_mode=mode or ("all" if record else "none"),
        allow_playback_repeats=False,
        # suites: a failed call leaves no (partial) cassette; tests' own code: what was
        # recorded before the test failed is kept (it was paid for)
        record_on_exception=record_on_exception,
    )


def save_responses(path: Path, persister: Persister, responses: list[Any]) -> None:
    """Write a cassette from httpx responses the client kept (the concurrent prefetch records
    without vcrpy), in the format vcrpy writes: secret headers dropped, images as sidecars."""
    from vcr.request import Request
    from vcr.serializers import yamlserializer

    dropped = (*SECRET_HEADERS, "content-encoding", "content-length", "transfer-encoding")
    requests, answers = [], []
    for response in responses:
        sent = response.request
        content_type = sent.headers.get("content-type", "")
        requests.append(
            Request(sent.method, str(sent.url), sent.content, {"Content-Type": content_type})
        )
        answers.append(
            {
                "status": {"code": response.status_code, "message": response.reason_phrase},
                "headers": {
                    k: [v] for k, v in response.headers.items() if k.lower() not in dropped
                },
                "body": {"string": response.content},
            }
        )
    persister.save_cassette(path, {"requests": requests, "responses": answers}, yamlserializer)


def new_meta(**fields: Any) -> dict[str, Any]:
    return {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
