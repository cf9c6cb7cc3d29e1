"""A prompt suite's cases once loaded: what one test sends and expects (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import multipart
from ..api.providers import ProviderSettings
from ..checks.expect import Expect
from .inputs import InputFile

SUITE_MARKER = re.compile(rb"^cases\s*:", re.MULTILINE)
ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

TOP_KEYS = ("suite", "description", "category", "use_case", "provider", "defaults", "cases")
CASE_KEYS = (
    "id", "description", "prompt", "model", "size", "quality", "n", "max_cost",
    "params", "extra_params", "tags", "expect", "matrix", "use_case", "image", "images", "mask",
    "provider",
)  # fmt: skip
DEFAULT_KEYS = tuple(k for k in CASE_KEYS if k not in ("id", "matrix", "prompt", "description"))
EXPECT_KEYS = (
    "count", "size", "format", "drift", "text", "text_similarity", "judge", "min_accept_rate",
)  # fmt: skip
#: matrix fields that make a case a right-sizing group (SPEC §14)
RIGHT_SIZE_FIELDS = ("size", "quality", "n", "model")
JUDGE_KEYS = ("rubric", "min_score", "model")
DRIFT_ALGORITHMS = ("phash", "colorhash", "ahash", "dhash", "whash")
MATRIX_FIELDS = ("model", "size", "quality", "n", "prompt", "image")
RESERVED_PARAMS = ("model", "prompt", "n", "size", "quality", "image", "mask")
#: suite fields that merge over defaults key by key and that a matrix may vary as `<field>.<key>`
PARAM_FIELDS = ("params", "extra_params")
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}

DEFAULT_MODEL = "gpt-image-2"
DEFAULT_SIZE = "1024x1024"


@dataclass(frozen=True)
class CaseSpec:
    """One test: a single images request and what must come back."""

    suite: str
    path: Path
    line: int
    id: str
    base_id: str
    prompt: str
    model: str
    size: str
    quality: str | None
    n: int
    max_cost: float | None
    params: Mapping[str, Any]
    tags: tuple[str, ...]
    expect: Expect
    category: str | None = None
    use_case: str | None = None
    matrix: tuple[tuple[str, Any], ...] = ()
    excluded: str | None = None  # right-sizing variant outside its use-case profile: why
    inputs: tuple[InputFile, ...] = ()  # an edit: the input images (SPEC §15)
    mask: InputFile | None = None
    #: gateway-specific request fields, sent unchecked (``extra_params:``)
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    #: the request shape (SPEC §19): openai | azure | gemini; not part of the request body,
    #: so the cassette of the same fields stays valid across providers of one model
    provider: str = "openai"

    @property
    def is_edit(self) -> bool:
        return bool(self.inputs)

    @property
    def right_size_group(self) -> bool:
        """A matrix over size, quality, n or model: its cells are variants to compare."""
        return any(key in RIGHT_SIZE_FIELDS for key, _ in self.matrix)

    def request_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "n": self.n,
            "size": self.size,
        }
        if self.quality is not None:
            body["quality"] = self.quality
        body.update(self.params)
        body.update(self.extra_params)
        if self.inputs:  # an edit: the multipart request's text fields and files' sha256
            return multipart.description(
                multipart.fields(body),
                [f.sha256 for f in self.inputs],
                self.mask.sha256 if self.mask else None,
            )
        return body


@dataclass
class Suite:
    name: str
    path: Path
    category: str | None
    use_case: str | None
    cases: list[CaseSpec] = field(default_factory=list)
    provider: str | None = None  # the suite's `provider:`
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    #: input images must lie inside it (``None``: inside the suite file's folder)
    project_root: Path | None = None


def looks_like_suite(data: bytes) -> bool:
    """Cheap pre-check used at collection: a top-level ``cases:`` key."""
    return SUITE_MARKER.search(data) is not None
