"""Keeping API keys out of every output (pure; no pytest).

* :class:`APIKey` holds a key; its ``repr``/``str`` show only ``sk-…9a1c``, so
  an object that holds one can appear in a traceback (``-l``, ``-vvv``) or a
  JUnit file without leaking it. ``reveal()`` is called only where the
  ``Authorization`` header is built.
* :class:`Redactor` knows every key value of the session and finds or masks
  each in its plain, URL-encoded and base64 forms (also inside a longer
  base64 text such as ``Basic base64(user:KEY)``, at any alignment). Every
  file the plugin writes, every message it builds and every test report goes
  through one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

#: every configured key of at least this length is masked, in plain and URL-encoded form
#: (shorter keys are refused at configure time: :func:`.settings.check_key_lengths`)
MIN_SECRET_LENGTH = 4
#: base64 "cores" shorter than this are not searched for. A core is made of base64
#: characters only, and what we search holds base64 of image bytes: a k-character core
#: occurs by chance about once per 64**k positions, so at 8 characters (2**48) never in
#: practice, at 5 characters once per ~1 GB and at 4 once per ~16 MB, where it would refuse
#: good cassettes and mask pieces of image data. So the base64 form of a key is searched at
#: the alignments that leave 8 or more key-only characters (every alignment from 7 key
#: bytes on, the aligned one from 6); its plain and URL-encoded forms always are (a short
#: key found by chance costs a refused cassette or a masked word, never a leak).
MIN_BASE64_CORE = 8
HIDDEN = "***"


def mask_value(value: str) -> str:
    """``sk-canary-…5d60`` style: enough to tell keys apart, never enough to use one."""
    if len(value) >= 12:
        return f"{value[:3]}…{value[-4:]}"
    return HIDDEN


def key_digest(value: str) -> str:
    """A stable name for a key (cache keys, logs) that does not reveal it."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


class APIKey:
    """An API key whose text representation is masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def digest(self) -> str:
        return key_digest(self._value)

    def __repr__(self) -> str:
        return f"APIKey({mask_value(self._value)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, APIKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.digest)

    def __bool__(self) -> bool:
        return bool(self._value)


def _base64_cores(raw: bytes) -> set[str]:
    """Substrings every base64 text containing ``raw`` has, whatever precedes it.

    ``raw`` may start at byte offset 0, 1 or 2 of a 3-byte group; for each
    offset the characters that encode only bytes of ``raw`` are the same in
    any text, so searching for them finds the key inside ``base64(user:KEY)``.
    """
    out: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start = -(-8 * offset // 6)  # first character made of key bits only
        end = (8 * (offset + len(raw))) // 6  # one past the last such character
        core = encoded[start:end]
        if len(core) >= MIN_BASE64_CORE:
            out.add(core)
            out.add(core.replace("+", "-").replace("/", "_"))  # URL-safe alphabet
    return out


def secret_forms(value: str) -> dict[str, str]:
    """needle -> what it is, for every form of ``value`` searched for."""
    forms = {value: "the API key"}
    for encoded in (quote(value, safe=""), quote_plus(value, safe="")):
        if encoded != value:
            lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
            forms.setdefault(encoded, "the API key (URL-encoded)")
            forms.setdefault(lower, "the API key (URL-encoded)")
    for core in _base64_cores(value.encode("utf-8")):
        forms.setdefault(core, "the API key (base64-encoded)")
    return forms


class Redactor:
    """Finds and masks every known key value, in any of its forms."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self._forms: dict[str, tuple[str, str]] = {}  # needle -> (description, replacement)
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} key(s))"

    def __bool__(self) -> bool:
        return bool(self._values)

    def add(self, *secrets: str | APIKey | None) -> None:
        """Learn more key values (under :data:`MIN_SECRET_LENGTH`: ignored, such a key is
        refused at configure time)."""
        for secret in secrets:
            value = secret.reveal() if isinstance(secret, APIKey) else (secret or "")
            value = value.strip()
            if len(value) < MIN_SECRET_LENGTH or value in self._values:
                continue
            self._values.append(value)
            for needle, what in secret_forms(value).items():
                replacement = mask_value(value) if needle == value else HIDDEN
                self._forms.setdefault(needle, (what, replacement))
            self._pattern = None

    def _regex(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._forms:
            needles = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(n) for n in needles))
        return self._pattern

    def find(self, text: str) -> str | None:
        """What form of a key ``text`` contains (e.g. "the API key (base64-encoded)"), or None."""
        regex = self._regex()
        if regex is None or not text:
            return None
        m = regex.search(text)
        return self._forms[m.group(0)][0] if m else None

    def mask(self, text: str) -> str:
        regex = self._regex()
        if regex is None or not text:
            return text
        return regex.sub(lambda m: self._forms[m.group(0)][1], text)

    def mask_data(self, data: Any) -> Any:
        """A copy of JSON-like ``data`` with every string (keys included) masked."""
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, Mapping):
            return {self.mask_data(k): self.mask_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.mask_data(v) for v in data]
        return data

    def mask_report(self, report: Any) -> None:
        """Mask a pytest test or collection report in place (its longrepr, captured
        sections and user properties), whatever object's repr carried a key."""
        if not self:
            return
        longrepr = report.longrepr
        if longrepr is not None:
            text = str(longrepr)
            if self.find(text):
                report.longrepr = self.mask(text)
        report.sections = [(name, self.mask(body)) for name, body in report.sections]
        if hasattr(report, "user_properties"):
            report.user_properties = [
                (self.mask(str(k)), self.mask_data(v)) for k, v in report.user_properties
            ]
