"""Prompt suite files: YAML -> validated, matrix-expanded case specs.

Pure logic (no pytest). ``load_suite`` collects *every* problem in a file and
raises one :class:`SuiteError` whose lines each name the file and line, the
case id, the field, what is wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..api.errors import PriceError, SuiteError
from ..api.providers import ProviderSettings
from ..api.shape import AUTO, parse_size
from ..money.prices import PriceTable
from .expectations import build_expect
from .inputs import InputFile, load_input
from .limits import refuse_too_many
from .paramcheck import check_params
from .spec import (
    CASE_KEYS,
    DEFAULT_KEYS,
    DEFAULT_MODEL,
    DEFAULT_SIZE,
    ID_RE,
    MATRIX_FIELDS,
    PARAM_FIELDS,
    TAG_RE,
    TOP_KEYS,
    CaseSpec,
    Suite,
)
from .yamlfile import (
    MAX_VALUES,
    LineDict,
    Problems,
    check_keys,
    did_you_mean,
    expanded_size,
    line_of,
    parse_yaml,
)


def load_suite(
    path: Path,
    prices: PriceTable,
    *,
    display: str | None = None,
    data: bytes | None = None,
    check_case: Callable[[CaseSpec], str | None] | None = None,
    providers: ProviderSettings | None = None,
    project_root: Path | None = None,
) -> Suite:
    """Parse and validate one suite file; raise :class:`SuiteError` listing every problem.

    ``check_case`` may veto a fully built case (used for use-case profiles);
    it returns a problem message or ``None``. ``providers``: the ini's provider settings
    (the default provider, Azure deployments). Input images of edit cases must be files
    inside ``project_root`` (default: the suite file's folder).
    """
    display = display or str(path)
    problems = Problems(display)
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
    check_keys(problems, raw, TOP_KEYS, None, "the suite file")

    name = raw.get("suite", path.stem)
    if not isinstance(name, str) or not ID_RE.match(name):
        problems.add(line_of(raw, "suite"), None, "suite", "must be a name of [A-Za-z0-9._-]")
        name = path.stem
    category = _opt_str(problems, raw, "category", None)
    use_case = _opt_str(problems, raw, "use_case", None)

    defaults = raw.get("defaults") or LineDict()
    if not isinstance(defaults, LineDict):
        problems.add(line_of(raw, "defaults"), None, "defaults", "must be a mapping of case fields")
        defaults = LineDict()
    else:
        check_keys(problems, defaults, DEFAULT_KEYS, None, "defaults")

    cases = raw["cases"]
    suite = Suite(
        name=name, path=path, category=category, use_case=use_case, project_root=project_root
    )
    suite.providers = providers or ProviderSettings()
    suite.provider = _provider_field(problems, raw, None)
    if not isinstance(cases, list) or not cases:
        problems.add(line_of(raw, "cases"), None, "cases", "must be a non-empty list of cases")
        raise SuiteError(problems.items)

    refuse_too_many(problems, raw, cases)
    seen_ids: dict[str, int] = {}
    for index, case in enumerate(cases):
        fallback_line = line_of(raw, "cases")
        if not isinstance(case, LineDict):
            problems.add(fallback_line, f"#{index + 1}", None, "each case must be a mapping")
            continue
        cid = case.get("id")
        if cid is None:
            problems.add(case.line, f"#{index + 1}", "id", "missing; every case needs an id")
            continue
        if not isinstance(cid, str) or not ID_RE.match(cid):
            problems.add(
                line_of(case, "id"), str(cid), "id",
                "must be a non-empty string of letters, digits, '.', '_' or '-'",
            )  # fmt: skip
            continue
        if cid in seen_ids:
            problems.add(
                line_of(case, "id"), cid, "id",
                f"duplicate id (first used on line {seen_ids[cid]}); ids must be unique in a file",
            )  # fmt: skip
            continue
        seen_ids[cid] = line_of(case, "id")
        check_keys(problems, case, CASE_KEYS, cid, "a case")
        for spec in _expand_case(problems, suite, defaults, case, cid, prices):
            veto = check_case(spec) if check_case else None
            if veto and spec.right_size_group:  # shown in the right-size report, never chosen
                suite.cases.append(dataclasses.replace(spec, excluded=veto))
            elif veto:
                problems.add(spec.line, spec.id, "use_case", veto)
            else:
                suite.cases.append(spec)

    ids = [c.id for c in suite.cases]
    for dup in sorted(i for i, count in Counter(ids).items() if count > 1):
        problems.add(
            1, dup, "matrix", "matrix expands to the same id twice; remove repeated values"
        )
    from ..cassettes.paths import colliding

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


def _opt_str(problems: Problems, mapping: LineDict, key: str, case: str | None) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(line_of(mapping, key), case, key, "must be a non-empty string")
        return None
    return value


def _provider_field(problems: Problems, mapping: LineDict, case: str | None) -> str | None:
    from ..api.providers import PROVIDERS

    value = _opt_str(problems, mapping, "provider", case)
    if value is not None and value not in PROVIDERS:
        problems.add(line_of(mapping, "provider"), case, "provider",
                     f"{value!r} is not a provider{did_you_mean(value, PROVIDERS)}; allowed: "
                     f"{', '.join(PROVIDERS)}")  # fmt: skip
        return None
    return value


def _provider(suite: Suite, v: Mapping[str, Any], model: Any, prices: PriceTable) -> str:
    """The case's provider: its own or its suite's ``provider:``, else as the model says
    (:func:`pytest_imagegen.api.providers.resolve`)."""
    from ..api.providers import resolve

    explicit = v.get("provider")
    named = explicit if isinstance(explicit, str) else suite.provider
    if not isinstance(model, str):
        return named or suite.providers.default
    return resolve(model, suite.providers, prices.provider_of(model), named)


def _merged(defaults: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, Any]:
    """Case fields over defaults; ``params``, ``extra_params`` and ``expect`` merge, ``tags``
    add up."""
    out = {k: v for k, v in defaults.items()}
    for key, value in case.items():
        base = out.get(key)
        if key in (*PARAM_FIELDS, "expect") and isinstance(base, dict) and isinstance(value, dict):
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
    problems: Problems,
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
                line_of(case, "matrix"), cid, "matrix", "must be a mapping of field: [values]"
            )
            return []
        axes: list[list[tuple[str, Any]]] = []
        for key, values in matrix.items():
            line = line_of(matrix, key)
            if key not in MATRIX_FIELDS and str(key).partition(".")[0] not in PARAM_FIELDS:
                problems.add(
                    line, cid, f"matrix.{key}",
                    f"cannot vary this field{did_you_mean(str(key), MATRIX_FIELDS)}; "
                    f"allowed: {', '.join(MATRIX_FIELDS)}, params.<name>, extra_params.<name>",
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
            head, _, name = key.partition(".")
            if head in PARAM_FIELDS and name:
                values[head] = _with_param(values.get(head), name, value, line_of(matrix, key))
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


def _with_param(base: Any, name: str, value: Any, line: int) -> Any:
    """``params`` (or ``extra_params``) with one key set by a matrix cell, keeping key lines."""
    if base is not None and not isinstance(base, dict):
        return base  # not a mapping: reported by the params check
    out = LineDict(base or {})
    out.line = getattr(base, "line", line)
    out.key_lines = {**getattr(base, "key_lines", {}), name: line}
    out[name] = value
    return out


def _build_spec(
    problems: Problems,
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
        line = line_of(mapping, key, fallback=case.line)
        if mapping is case and key not in case:
            line = case.line
        problems.add(line, cid, key, message)

    prompt = v.get("prompt")
    if prompt is None:
        bad("prompt", "missing; every case needs the prompt text to send")
    elif not isinstance(prompt, str) or not prompt.strip():
        bad("prompt", "must be a non-empty string")

    model = v.get("model", DEFAULT_MODEL)
    from ..api.providers import PROVIDERS
    from ..api.providers import get as provider_shape

    if "provider" in v and (not isinstance(v["provider"], str) or v["provider"] not in PROVIDERS):
        given = v["provider"]
        bad("provider", f"{given!r} is not a provider"
            f"{did_you_mean(str(given), PROVIDERS)}; allowed: {', '.join(PROVIDERS)}")  # fmt: skip
    provider = _provider(suite, v, model, prices)
    shape = provider_shape(provider if provider in PROVIDERS else "openai")
    model_prices = None
    if not isinstance(model, str):
        bad("model", "must be a model name string, e.g. gpt-image-2")
    else:
        try:
            model_prices = prices.model(model)
        except PriceError as exc:
            hint = (
                f"; an Azure deployment is priced as the model it serves: map it with ini "
                f"`imagegen_deployments = {model}=gpt-image-2`"
                if provider == "azure"
                else ""
            )
            bad("model", f"{exc}{hint}")

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
    if not shape.takes_quality:
        quality = None  # e.g. Gemini: no quality setting (a cross-provider matrix keeps one)
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

    edit = v.get("image") is not None or v.get("images") is not None
    if edit and not shape.takes_edits:
        bad("image", f"provider {provider} cannot edit images yet; use a GPT image model "
            "(provider openai or azure) for cases with `image:`")  # fmt: skip
    priced_as = model_prices.name if model_prices else model if isinstance(model, str) else None
    params, extra_params = check_params(
        problems, case, cid, v, priced_as, "edits" if edit else "generations", provider
    )

    tags = v.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in tags):
        bad("tags", "must be a list of words of [A-Za-z0-9_.-]")
        tags = []

    use_case = v.get("use_case", suite.use_case)
    if use_case is not None and not isinstance(use_case, str):
        bad("use_case", "must be a profile name")
        use_case = None

    expect = build_expect(bad, v.get("expect"), n if n_ok else 1, size, {**params, **extra_params})
    if expect is not None and expect.judge is not None and expect.judge.model is not None:
        try:
            prices.chat_model(expect.judge.model)
        except PriceError as exc:
            bad("expect", f"judge: {exc}{did_you_mean(expect.judge.model, prices.chat)}")
            expect = None

    inputs, mask = _inputs(bad, suite, v)

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
        params=params,
        extra_params=extra_params,
        tags=tuple(tags),
        expect=expect,
        category=suite.category,
        use_case=use_case,
        matrix=combo,
        inputs=inputs,
        mask=mask,
        provider=provider,
    )


def _inputs(
    bad: Callable[..., None], suite: Suite, v: Mapping[str, Any]
) -> tuple[tuple[InputFile, ...], InputFile | None]:
    """``image``/``images`` and ``mask`` of an edit case, read and checked (files inside the
    project only)."""
    base, root = suite.path.parent, suite.project_root
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
        loaded, why = load_input(base, value, root)
        if why:
            bad("image" if one is not None else "images", why)
        elif loaded is not None:
            found.append(loaded)
    if mask_value is None:
        return tuple(found), None
    if not values:
        bad("mask", "a mask needs an input image: add `image: path`")
        return tuple(found), None
    mask, why = load_input(base, mask_value, root)
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
