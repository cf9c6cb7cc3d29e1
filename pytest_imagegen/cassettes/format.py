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

import hashlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..api.errors import CassetteError
from .files import IMAGE_EXTENSIONS, UnsafePath, check_inside, shown
from .paths import owning_root

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
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
    "set-cookie",
)
SECRET_QUERY_PARAMS = ("api-key", "api_key", "key", "access_token", "token")


# ------------------------------------------------------------ matching / diffs


def canonical_json(body: Any) -> str:
    """Canonical text of a JSON request body (sorted keys, no spaces); a multipart body
    (an edit) is described by its text fields and its files' sha256."""
    if isinstance(body, (bytes, bytearray)):
        from ..api.multipart import describe_multipart

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


def route_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the same provider route, from its own suffix on (a gateway's path
    prefix, the host and Azure's ``api-version`` are not compared; SPEC §4, §19)."""
    from ..api.providers import match_path

    if match_path(r1.path) != match_path(r2.path):
        raise AssertionError("request paths differ")


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


def read_fingerprint(path: Path) -> str | None:
    """The request sha256 from a cassette's first line; ``None`` if missing or foreign."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return ""  # a folder, or unreadable: not a cassette of ours
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


def new_meta(**fields: Any) -> dict[str, Any]:
    return {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
