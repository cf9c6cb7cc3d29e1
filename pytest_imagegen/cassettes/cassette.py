"""One suite case's cassette, read at most once per run of the case (SPEC §1).

The runner opens a :class:`CaseCassette` and hands it along: freshness is
decided from the first line (the request fingerprint) without parsing the
YAML; the first thing that needs the content (replay, the judge's recorded
verdicts, a stale cassette's changed fields) parses it, and everything after
reads that same parse. Writing the judge's verdicts back updates it too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import APIError, CassetteError
from ..api.redact import Redactor
from .files import atomic_write, shown
from .format import (
    DAMAGE,
    MARKER_RE,
    damaged,
    diff_bodies,
    fingerprint,
    load_yaml,
    read_fingerprint,
    why,
)
from .store import ImageStore

if TYPE_CHECKING:
    from ..api.client import Generation

_UNREAD = object()


@dataclass
class CassetteState:
    status: str  # missing | fresh | stale
    changes: list[str]
    meta: dict[str, Any]


class CaseCassette:
    """The cassette file of one case: its fingerprint line, and its content parsed once."""

    #: YAML parses of case cassettes in this process (the tests count them)
    parses = 0

    def __init__(self, path: Path, fix: str) -> None:
        self.path = path
        self.fix = fix
        self._fingerprint: Any = _UNREAD
        self._data: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"CaseCassette({shown(self.path)!r})"

    # -- reading
    @property
    def recorded_fingerprint(self) -> str | None:
        """The request sha256 of the first line; ``None`` when there is no file, ``""`` when
        the file is not one of ours."""
        if self._fingerprint is _UNREAD:
            self._fingerprint = read_fingerprint(self.path)
        value: str | None = self._fingerprint
        return value

    @property
    def exists(self) -> bool:
        return self.recorded_fingerprint is not None

    def reload(self) -> CaseCassette:
        """Forget what was read (another process may have written the file since)."""
        self._fingerprint, self._data = _UNREAD, None
        return self

    def data(self) -> dict[str, Any]:
        if self._data is None:
            CaseCassette.parses += 1
            self._data = load_yaml(self.path, self.fix)
        return self._data

    @property
    def meta(self) -> dict[str, Any]:
        """The ``imagegen:`` mapping (request, costs, session, judge, images)."""
        meta = self.data().get("imagegen")
        return meta if isinstance(meta, dict) else {}

    def recorded_by(self, session_id: str) -> bool:
        """This session recorded the cassette (the prefetch, another xdist worker)."""
        return bool(session_id) and self.exists and self.meta.get("session") == session_id

    def state(self, body: Mapping[str, Any]) -> CassetteState:
        """Compare the cassette with the request the case would send now."""
        recorded = self.recorded_fingerprint
        if recorded is None:
            return CassetteState("missing", [], {})
        if recorded == fingerprint(body):
            return CassetteState("fresh", [], {})
        data = self.data()
        meta = self.meta
        old = meta.get("request")
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
        return CassetteState("stale", changes, meta)

    def generation(
        self, body: Mapping[str, Any], images: ImageStore
    ) -> tuple[Generation, dict[str, Any]] | None:
        """Replay straight from the cassette: no HTTP stack, no base64 round trip.

        Gives the same images, revised prompts and usage a replay through vcrpy and
        the images client gives (the tests compare both), plus the cassette's
        ``imagegen`` meta. ``None`` when the cassette has no interaction for
        ``body`` (the caller then takes the vcrpy path, which explains the problem).
        """
        try:
            return self._generation(body, images)
        except (*DAMAGE, binascii.Error) as exc:
            raise damaged(
                self.path, f"its response cannot be read ({why(exc)})", self.fix
            ) from None
        except APIError as exc:  # the recorded payload is not an images result
            raise damaged(self.path, str(exc), self.fix) from None

    def _generation(
        self, body: Mapping[str, Any], images: ImageStore
    ) -> tuple[Generation, dict[str, Any]] | None:
        from ..api.providers import classify, read_answer

        path, fix = self.path, self.fix
        data = self.data()
        want = fingerprint(body)
        downloads = {}
        post = None
        images_post = None  # a provider request whose body is not the case's fields (Gemini)
        for interaction in data["interactions"]:
            request = interaction.get("request") if isinstance(interaction, dict) else None
            if not isinstance(request, dict):
                return None
            if request.get("method") == "POST" and post is None:
                if fingerprint(request.get("body") or b"") == want:
                    post = interaction
                elif images_post is None:
                    route = classify("POST", _by_path(str(request.get("uri"))))
                    images_post = interaction if route and route.kind == "image" else None
            elif request.get("method") == "GET":
                downloads[_by_path(str(request.get("uri")))] = interaction
        if post is None and self.recorded_fingerprint == want:
            post = images_post  # the cassette was recorded for these case fields
        if post is None:
            return None
        try:
            status = int(post["response"]["status"]["code"])
            content = post["response"]["body"]["string"]
            content_type = _header(post["response"].get("headers"), "content-type")
        except (KeyError, TypeError, ValueError):
            return None
        if status >= 400 or not isinstance(content, (str, bytes)):
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
                return (
                    raw if raw is not None else base64.b64decode(b64, validate=True)
                ), "b64_json"
            download = downloads.get(_by_path(str(item.get("url"))))
            if download is not None:
                content = (download["response"].get("body") or {}).get("string")
                raw = content if isinstance(content, bytes) else stored(content, index)
                if raw is not None:
                    return raw, "url"
            raise CassetteError(
                f"cassette {shown(path)} lacks image {index} of its response; {fix}"
            )

        generation = read_answer(content, content_type, fetch)
        for index, sha in shas.items():
            generation.images[index].sha256 = sha
        return generation, self.meta

    # -- writing
    def add_judge(
        self,
        judge_meta: Mapping[str, Any],
        interactions: list[dict[str, Any]],
        redactor: Redactor,
    ) -> bool:
        """Put the judge's verdicts and chat interactions into the cassette, replacing
        earlier ones (the image interaction stays). ``False`` when there is no cassette (its
        writing was refused): the verdicts then count for this run only."""
        import yaml

        if not self.path.is_file():
            return False
        data = self.data()
        header = "".join(self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:2])
        kept = [
            i
            for i in data["interactions"]
            if not (
                isinstance(i, dict)
                and "/chat/completions" in str((i.get("request") or {}).get("uri"))
            )
        ]
        updated = dict(data)
        updated["interactions"] = kept + interactions
        updated["imagegen"] = {**self.meta, "judge": dict(judge_meta)}
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(updated, Dumper=dumper)
        found = redactor.find(text)
        if found:
            raise CassetteError(
                f"refused to write the judge into cassette {shown(self.path)}: it would contain "
                f"{found}. Nothing was written."
            )
        atomic_write(self.path, (header + text).encode("utf-8"))
        self._data = updated
        return True


def _header(headers: Any, name: str) -> str:
    """A recorded response header (vcrpy keeps each as a list), case-insensitively."""
    for key, value in (headers or {}).items() if isinstance(headers, dict) else []:
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return ""


def _by_path(url: str) -> str:
    """A download is matched by scheme, host and path: its query (a signed URL's token) is
    never recorded."""
    return url.split("?", 1)[0]
