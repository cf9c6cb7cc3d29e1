"""Prompt suite files: YAML -> validated, matrix-expanded case specs.

Pure logic (no pytest). ``load_suite`` collects *every* problem in a file and
raises one :class:`SuiteError` whose lines each name the file and line, the
case id, the field, what is wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import edits
from .costs import AUTO, PriceTable, parse_size
from .edits import InputFile
from .errors import PriceError, SuiteError

SUITE_MARKER = re.compile(rb"^cases\s*:", re.MULTILINE)
ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

TOP_KEYS = ("suite", "description", "category", "use_case", "defaults", "cases")
CASE_KEYS = (
    "id", "description", "prompt", "model", "size", "quality", "n", "max_cost",
    "params", "tags", "expect", "matrix", "use_case", "image", "images", "mask",
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
RESERVED_PARAMS = ("model", "prompt", "n", "size", "quality")
FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}

DEFAULT_MODEL = "gpt-image-2"
DEFAULT_SIZE = "1024x1024"

DriftSetting = dict[str, int] | None  # None: drift check off


@dataclass(frozen=True)
class JudgeSpec:
    """``expect.judge``: a vision model scores every image against the rubric (0..1).

    ``model`` and ``min_score`` left ``None`` take the ini defaults
    (``imagegen_judge_model``, ``imagegen_judge_min_score``).
    """

    rubric: str
    min_score: float | None = None
    model: str | None = None


@dataclass(frozen=True)
class Expect:
    count: int
    size: str | None  # WxH every decoded image must have, None: not checked
    format: str | None  # Pillow format name ("PNG", ...), None: not checked
    drift: Mapping[str, int] | None  # per-algorithm thresholds overriding ini; None: off
    drift_defaults: bool = True  # fill missing algorithms from the ini defaults
    text: tuple[str, ...] = ()  # strings OCR must read in every image
    text_similarity: float = 0.95  # see textmatch: 1 - edit distance / len(expected)
    judge: JudgeSpec | None = None
    min_accept_rate: float = 1.0  # right-sizing: a variant passes at this accept rate


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
        if self.inputs:  # an edit: the multipart request's text fields and files' sha256
            return edits.description(
                edits.fields(body),
                [f.sha256 for f in self.inputs],
                self.mask.sha256 if self.mask else None,
            )
        return body


def request_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body without its prompt: what reports and the ledger show as parameters."""
    return {k: v for k, v in body.items() if k != "prompt"}


@dataclass
class Suite:
    name: str
    path: Path
    category: str | None
    use_case: str | None
    cases: list[CaseSpec] = field(default_factory=list)


def looks_like_suite(data: bytes) -> bool:
    """Cheap pre-check used at collection: a top-level ``cases:`` key."""
    return SUITE_MARKER.search(data) is not None


# --------------------------------------------------------------------------- YAML


class LineDict(dict[Any, Any]):
    """A mapping that remembers the line of itself and of each key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    duplicate_keys: list[tuple[Any, int]]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicate_keys.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


#: values a suite may expand to (YAML aliases repeat values without repeating text: a
#: "billion laughs" file of a few hundred bytes would otherwise hang the run)
MAX_VALUES = 200_000


def expanded_size(data: Any, limit: int = MAX_VALUES) -> int:
    """How many values ``data`` holds once every alias is written out (stops past ``limit``)."""
    memo: dict[int, int] = {}

    def size(value: Any) -> int:
        key = id(value)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a value that contains itself is too large
        total = 1
        children = (
            [x for pair in value.items() for x in pair]
            if isinstance(value, dict)
            else value
            if isinstance(value, list)
            else ()
        )
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[key] = total
        return total

    return size(data)


def parse_yaml(text: str | bytes) -> tuple[Any, list[tuple[Any, int]]]:
    loader = _LineLoader(text)
    loader.duplicate_keys = []
    try:
        return loader.get_single_data(), loader.duplicate_keys
    finally:
        loader.dispose()


# --------------------------------------------------------------------- validation


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Problems:
    def __init__(self, display: str) -> None:
        self.display = display
        self._items: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[str]:
        """Problems in file order (stable for problems on the same line)."""
        return [text for _, text in sorted(self._items, key=lambda item: item[0])]

    def add(self, line: int, case: str | None, fld: str | None, message: str) -> None:
        where = f"{self.display}:{line}"
        parts = [where]
        if case is not None:
            parts.append(f"case {case!r}")
        if fld is not None:
            parts.append(f"field {fld!r}")
        self._items.append((line, ": ".join(parts) + ": " + message))


def _line(mapping: Any, key: Any = None, fallback: int = 1) -> int:
    if isinstance(mapping, LineDict):
        if key is not None and key in mapping.key_lines:
            return mapping.key_lines[key]
        return mapping.line
    return fallback


def _check_keys(
    problems: _Problems, mapping: LineDict, allowed: tuple[str, ...], case: str | None, what: str
) -> None:
    for key in mapping:
        if key not in allowed:
            problems.add(
                _line(mapping, key),
                case,
                str(key),
                f"unknown key in {what}{did_you_mean(str(key), allowed)}; "
                f"allowed: {', '.join(allowed)}",
            )


def load_suite(
    path: Path,
    prices: PriceTable,
    *,
    display: str | None = None,
    data: bytes | None = None,
    check_case: Callable[[CaseSpec], str | None] | None = None,
) -> Suite:
    """Parse and validate one suite file; raise :class:`SuiteError` listing every problem.

    ``check_case`` may veto a fully built case (used for use-case profiles);
    it returns a problem message or ``None``.
    """
    display = display or str(path)
    problems = _Problems(display)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SuiteError([f"{display}: cannot read the file: {exc.strerror}"]) from None
    try:
        raw, duplicates = parse_yaml(data)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = f", column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise SuiteError(
            [f"{display}:{line}: YAML syntax error{col}: {what}; fix the YAML at that line"]
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteError([f"{display}: YAML syntax error: {exc}"]) from None
    if expanded_size(raw) > MAX_VALUES:
        raise SuiteError(
            [
                f"{display}:1: the file expands to more than {MAX_VALUES:,} values through YAML "
                "aliases (*name); write the repeated values out, or use fewer nested aliases"
            ]
        )
    for key, line in duplicates:
        problems.add(line, None, str(key), "key appears twice in the same mapping; keep one")

    if not isinstance(raw, LineDict) or "cases" not in raw:
        raise SuiteError(
            [f"{display}:1: not a prompt suite: a top-level `cases:` list is required"]
        )
    _check_keys(problems, raw, TOP_KEYS, None, "the suite file")

    name = raw.get("suite", path.stem)
    if not isinstance(name, str) or not ID_RE.match(name):
        problems.add(_line(raw, "suite"), None, "suite", "must be a name of [A-Za-z0-9._-]")
        name = path.stem
    category = _opt_str(problems, raw, "category", None)
    use_case = _opt_str(problems, raw, "use_case", None)

    defaults = raw.get("defaults") or LineDict()
    if not isinstance(defaults, LineDict):
        problems.add(_line(raw, "defaults"), None, "defaults", "must be a mapping of case fields")
        defaults = LineDict()
    else:
        _check_keys(problems, defaults, DEFAULT_KEYS, None, "defaults")

    cases = raw["cases"]
    suite = Suite(name=name, path=path, category=category, use_case=use_case)
    if not isinstance(cases, list) or not cases:
        problems.add(_line(raw, "cases"), None, "cases", "must be a non-empty list of cases")
        raise SuiteError(problems.items)

    seen_ids: dict[str, int] = {}
    for index, case in enumerate(cases):
        fallback_line = _line(raw, "cases")
        if not isinstance(case, LineDict):
            problems.add(fallback_line, f"#{index + 1}", None, "each case must be a mapping")
            continue
        cid = case.get("id")
        if cid is None:
            problems.add(case.line, f"#{index + 1}", "id", "missing; every case needs an id")
            continue
        if not isinstance(cid, str) or not ID_RE.match(cid):
            problems.add(
                _line(case, "id"), str(cid), "id",
                "must be a non-empty string of letters, digits, '.', '_' or '-'",
            )  # fmt: skip
            continue
        if cid in seen_ids:
            problems.add(
                _line(case, "id"), cid, "id",
                f"duplicate id (first used on line {seen_ids[cid]}); ids must be unique in a file",
            )  # fmt: skip
            continue
        seen_ids[cid] = _line(case, "id")
        _check_keys(problems, case, CASE_KEYS, cid, "a case")
        for spec in _expand_case(problems, suite, defaults, case, cid, prices):
            veto = check_case(spec) if check_case else None
            if veto and spec.right_size_group:  # shown in the right-size report, never chosen
                suite.cases.append(dataclasses.replace(spec, excluded=veto))
            elif veto:
                problems.add(spec.line, spec.id, "use_case", veto)
            else:
                suite.cases.append(spec)

    ids = [c.id for c in suite.cases]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.add(
            1, dup, "matrix", "matrix expands to the same id twice; remove repeated values"
        )
    from .recording import colliding

    lines = {c.id: c.line for c in suite.cases}
    for first, second, stem in colliding(dict.fromkeys(ids)):
        problems.add(
            lines[second], second, "id",
            f"would be stored in the same cassette file as case {first!r} "
            f"(cassettes/{path.stem}/{stem}.yaml): the ids differ only in characters a file "
            "name cannot hold; rename one (for matrix values: make them differ in letters "
            "or digits)",
        )  # fmt: skip
    if problems.items:
        raise SuiteError(problems.items)
    return suite


def _opt_str(problems: _Problems, mapping: LineDict, key: str, case: str | None) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(_line(mapping, key), case, key, "must be a non-empty string")
        return None
    return value


def _merged(defaults: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, Any]:
    """Case fields over defaults; ``params`` and ``expect`` merge, ``tags`` add up."""
    out = {k: v for k, v in defaults.items()}
    for key, value in case.items():
        base = out.get(key)
        if key in ("params", "expect") and isinstance(base, dict) and isinstance(value, dict):
            merged = LineDict(base)
            merged.update(value)
            merged.line = getattr(value, "line", 0)
            merged.key_lines = {**getattr(base, "key_lines", {}), **getattr(value, "key_lines", {})}
            out[key] = merged
        elif key == "tags" and isinstance(base, list) and isinstance(value, list):
            out[key] = base + [t for t in value if t not in base]
        else:
            out[key] = value
    return out


def _expand_case(
    problems: _Problems,
    suite: Suite,
    defaults: LineDict,
    case: LineDict,
    cid: str,
    prices: PriceTable,
) -> list[CaseSpec]:
    matrix = case.get("matrix")
    combos: list[tuple[tuple[str, Any], ...]] = [()]
    if matrix is not None:
        if not isinstance(matrix, LineDict) or not matrix:
            problems.add(
                _line(case, "matrix"), cid, "matrix", "must be a mapping of field: [values]"
            )
            return []
        axes: list[list[tuple[str, Any]]] = []
        for key, values in matrix.items():
            line = _line(matrix, key)
            if key not in MATRIX_FIELDS and not str(key).startswith("params."):
                problems.add(
                    line, cid, f"matrix.{key}",
                    f"cannot vary this field{did_you_mean(str(key), MATRIX_FIELDS)}; "
                    f"allowed: {', '.join(MATRIX_FIELDS)}, params.<name>",
                )  # fmt: skip
                return []
            if not isinstance(values, list) or not values:
                problems.add(line, cid, f"matrix.{key}", "must be a non-empty list of values")
                return []
            axes.append([(str(key), v) for v in values])
        combos = [tuple(c) for c in itertools.product(*axes)]

    out = []
    fields = _merged(defaults, {k: v for k, v in case.items() if k != "matrix"})
    for combo in combos:
        values = dict(fields)
        for key, value in combo:
            if key.startswith("params."):
                params = dict(values.get("params") or {})
                params[key.split(".", 1)[1]] = value
                values["params"] = params
            else:
                values[key] = value
        case_id = cid
        if combo:
            case_id += "[" + "-".join(f"{k}={v}" for k, v in combo) + "]"
        spec = _build_spec(problems, suite, case, values, cid, case_id, combo, prices)
        if spec is None:
            return []  # report a broken case once, not once per matrix cell
        out.append(spec)
    return out


def _build_spec(
    problems: _Problems,
    suite: Suite,
    case: LineDict,
    v: dict[str, Any],
    cid: str,
    case_id: str,
    combo: tuple[tuple[str, Any], ...],
    prices: PriceTable,
) -> CaseSpec | None:
    before = len(problems)

    def bad(key: str, message: str, mapping: Any = case) -> None:
        line = _line(mapping, key, fallback=case.line)
        if mapping is case and key not in case:
            line = case.line
        problems.add(line, cid, key, message)

    prompt = v.get("prompt")
    if prompt is None:
        bad("prompt", "missing; every case needs the prompt text to send")
    elif not isinstance(prompt, str) or not prompt.strip():
        bad("prompt", "must be a non-empty string")

    model = v.get("model", DEFAULT_MODEL)
    model_prices = None
    if not isinstance(model, str):
        bad("model", "must be a model name string, e.g. gpt-image-2")
    else:
        try:
            model_prices = prices.model(model)
        except PriceError as exc:
            bad("model", str(exc) + did_you_mean(model, prices.models))

    size = v.get("size", DEFAULT_SIZE)
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        bad("size", f"YAML read this as the number {size!r} (0x… is a hexadecimal number in YAML, "
            "1024 a plain one), not a size; write WxH, e.g. 1024x1024, or auto")  # fmt: skip
    elif not isinstance(size, str) or (size != AUTO and parse_size(size) is None):
        bad("size", f"{size!r} is not a size; write WxH, e.g. 1024x1024, or auto")
    elif model_prices is not None:
        why = model_prices.size_problem(size)
        if why:
            bad("size", f"{size} cannot be used with {model}: {why}; allowed: "
                f"{model_prices.allowed_sizes()}")  # fmt: skip

    quality = v.get("quality")
    if quality is not None:
        if not isinstance(quality, str):
            bad("quality", "must be a string")
        elif model_prices is not None and model_prices.quality_problem(quality):
            allowed = ", ".join(("auto", *model_prices.qualities))
            bad("quality", f"{quality!r} is not allowed for {model}{did_you_mean(quality, model_prices.qualities)}; "
                f"allowed: {allowed}")  # fmt: skip

    n = v.get("n", 1)
    max_n = model_prices.max_n if model_prices else 10
    n_ok = not isinstance(n, bool) and isinstance(n, int) and 1 <= n <= 10
    if not n_ok:
        bad("n", f"must be a whole number from 1 to 10, got {n!r}")
    elif n > max_n:
        bad("n", f"{model} takes at most n={max_n}, got {n}")

    if (
        model_prices is not None
        and isinstance(prompt, str)
        and model_prices.max_prompt_chars
        and len(prompt) > model_prices.max_prompt_chars
    ):
        bad("prompt", f"{len(prompt)} characters; {model} takes at most "
            f"{model_prices.max_prompt_chars}")  # fmt: skip

    max_cost = v.get("max_cost")
    if max_cost is not None and (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or not math.isfinite(max_cost)
        or max_cost <= 0
    ):
        bad("max_cost", f"must be a finite number of USD greater than 0, got {max_cost!r}")

    params = v.get("params") or {}
    if not isinstance(params, dict):
        bad("params", "must be a mapping of extra request fields, e.g. {output_format: png}")
        params = {}
    for key in params:
        if key in RESERVED_PARAMS:
            bad("params", f"{key!r} is a case field; set `{key}:` on the case, not in params")

    tags = v.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in tags):
        bad("tags", "must be a list of words of [A-Za-z0-9_.-]")
        tags = []

    use_case = v.get("use_case", suite.use_case)
    if use_case is not None and not isinstance(use_case, str):
        bad("use_case", "must be a profile name")
        use_case = None

    expect = _build_expect(bad, v.get("expect"), n if n_ok else 1, size, params)
    if expect is not None and expect.judge is not None and expect.judge.model is not None:
        try:
            prices.chat_model(expect.judge.model)
        except PriceError as exc:
            bad("expect", f"judge: {exc}{did_you_mean(expect.judge.model, prices.chat)}")
            expect = None

    inputs, mask = _inputs(bad, suite.path.parent, v)

    if len(problems) > before or expect is None:
        return None
    return CaseSpec(
        suite=suite.name,
        path=suite.path,
        line=case.line,
        id=case_id,
        base_id=cid,
        prompt=prompt,  # type: ignore[arg-type]
        model=model,
        size=size,
        quality=quality,
        n=n,
        max_cost=float(max_cost) if max_cost is not None else None,
        params=dict(params),
        tags=tuple(tags),
        expect=expect,
        category=suite.category,
        use_case=use_case,
        matrix=combo,
        inputs=inputs,
        mask=mask,
    )


def _inputs(
    bad: Callable[..., None], base: Path, v: Mapping[str, Any]
) -> tuple[tuple[InputFile, ...], InputFile | None]:
    """``image``/``images`` and ``mask`` of an edit case, read and checked."""
    one, many, mask_value = v.get("image"), v.get("images"), v.get("mask")
    if one is not None and many is not None:
        bad("images", "give `image: path` or `images: [paths]`, not both")
        return (), None
    if many is not None and (not isinstance(many, list) or not many):
        bad("images", "must be a non-empty list of image paths (relative to the suite file)")
        return (), None
    values = [one] if one is not None else list(many or [])
    found = []
    for value in values:
        loaded, why = edits.load_input(base, value)
        if why:
            bad("image" if one is not None else "images", why)
        elif loaded is not None:
            found.append(loaded)
    if mask_value is None:
        return tuple(found), None
    if not values:
        bad("mask", "a mask needs an input image: add `image: path`")
        return tuple(found), None
    mask, why = edits.load_input(base, mask_value)
    if why or mask is None:
        bad("mask", why or "cannot be read")
        return tuple(found), None
    if found and (mask.width, mask.height) != (found[0].width, found[0].height):
        bad("mask", f"{mask.shown!r} is {mask.width}x{mask.height} but the first image is "
            f"{found[0].width}x{found[0].height}; the mask must have the same size")  # fmt: skip
    elif not mask.has_alpha:
        bad("mask", f"{mask.shown!r} has no alpha channel; its transparent pixels mark where "
            "to edit: save it as a PNG with transparency")  # fmt: skip
    return tuple(found), mask


def _build_expect(
    bad: Callable[..., None], raw: Any, n: int, size: Any, params: Mapping[str, Any]
) -> Expect | None:
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, dict):
        bad("expect", "must be a mapping with count, size, format, drift")
        return None
    ok = True
    for key in raw:
        if key not in EXPECT_KEYS:
            bad("expect", f"unknown key {key!r}{did_you_mean(str(key), EXPECT_KEYS)}; "
                f"allowed: {', '.join(EXPECT_KEYS)}", raw)  # fmt: skip
            ok = False
    count = raw.get("count", n)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        bad("expect", f"count must be a whole number >= 1, got {count!r}", raw)
        ok = False
    exp_size = raw.get("size", size if isinstance(size, str) and parse_size(size) else None)
    if exp_size is not None and (not isinstance(exp_size, str) or parse_size(exp_size) is None):
        bad("expect", f"size must be WxH, e.g. 1024x1024, got {exp_size!r}", raw)
        ok = False
    fmt = raw.get("format", params.get("output_format"))
    pil_format = None
    if fmt is not None:
        pil_format = FORMATS.get(str(fmt).lower())
        if pil_format is None:
            bad("expect", f"format {fmt!r} is not an image format; allowed: png, jpeg, webp", raw)
            ok = False
    drift_raw = raw.get("drift")
    drift: dict[str, int] | None = {}
    if drift_raw is False or drift_raw == "off":
        drift = None
    elif drift_raw is not None:
        if not isinstance(drift_raw, dict):
            bad("expect", "drift must be `off` or a mapping like {phash: 10, colorhash: 4}", raw)
            return None
        for algo, threshold in drift_raw.items():
            if algo not in DRIFT_ALGORITHMS:
                bad("expect", f"drift: unknown algorithm {algo!r}{did_you_mean(str(algo), DRIFT_ALGORITHMS)}; "
                    f"allowed: {', '.join(DRIFT_ALGORITHMS)}", raw)  # fmt: skip
                ok = False
            elif isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
                bad("expect", f"drift: {algo} threshold must be a whole number >= 0, "
                    f"got {threshold!r}", raw)  # fmt: skip
                ok = False
            else:
                assert drift is not None
                drift[str(algo)] = threshold
    text_raw = raw.get("text", [])
    texts = [text_raw] if isinstance(text_raw, str) else text_raw
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        bad("expect", "text must be a string or a list of non-empty strings to read in every "
            'image, e.g. text: ["GRAND OPENING"]', raw)  # fmt: skip
        ok = False
    similarity = raw.get("text_similarity", 0.95)
    if (
        isinstance(similarity, bool)
        or not isinstance(similarity, (int, float))
        or not 0 < similarity <= 1
    ):
        bad(
            "expect",
            f"text_similarity must be a number above 0 and at most 1, got {similarity!r}",
            raw,
        )
        ok = False
    judge = _build_judge(bad, raw)
    min_accept = raw.get("min_accept_rate", 1.0)
    if (
        isinstance(min_accept, bool)
        or not isinstance(min_accept, (int, float))
        or not 0 < min_accept <= 1
    ):
        bad(
            "expect",
            f"min_accept_rate must be a number above 0 and at most 1, got {min_accept!r}",
            raw,
        )
        ok = False
    if not ok or judge is False:
        return None
    return Expect(
        count=count,
        size=exp_size,
        format=pil_format,
        drift=drift,
        text=tuple(texts),
        text_similarity=float(similarity),
        judge=judge if isinstance(judge, JudgeSpec) else None,
        min_accept_rate=float(min_accept),
    )


def _build_judge(bad: Callable[..., None], raw: Mapping[str, Any]) -> JudgeSpec | bool | None:
    """``expect.judge`` (a rubric string, or a mapping); ``False`` when it is invalid."""
    value = raw.get("judge")
    if value is None:
        return None
    if isinstance(value, str):
        value = {"rubric": value}
    if not isinstance(value, Mapping):
        bad("expect", 'judge must be a rubric string or {rubric: "...", min_score: 0.7, '
            "model: gpt-4.1-mini}", raw)  # fmt: skip
        return False
    unknown = [k for k in value if k not in JUDGE_KEYS]
    rubric, min_score, model = value.get("rubric"), value.get("min_score"), value.get("model")
    problem = None
    if unknown:
        problem = (f"judge: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), JUDGE_KEYS)}; "
                   f"allowed: {', '.join(JUDGE_KEYS)}")  # fmt: skip
    elif not isinstance(rubric, str) or not rubric.strip():
        problem = "judge: rubric must be a non-empty string saying what the image must show"
    elif min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, (int, float))
        or not 0 <= min_score <= 1
    ):  # fmt: skip
        problem = f"judge: min_score must be a number from 0 to 1, got {min_score!r}"
    elif model is not None and not isinstance(model, str):
        problem = "judge: model must be a chat model name, e.g. gpt-4.1-mini"
    if problem:
        bad("expect", problem, raw)
        return False
    return JudgeSpec(
        rubric=str(rubric).strip(),
        min_score=float(min_score) if min_score is not None else None,
        model=model,
    )
