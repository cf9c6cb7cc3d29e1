"""SPEC §2: every validation error is one readable line: file, case, field, what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_imagegen.api.errors import SuiteError
from pytest_imagegen.money.prices import PriceTable
from pytest_imagegen.suites.loader import load_suite

from .conftest import write_suite

PRICES = PriceTable.load()


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    with pytest.raises(SuiteError) as excinfo:
        load_suite(path, PRICES, display="prompt_suites/suite.yaml")
    return excinfo.value.problems


CASES = {
    "unknown key with did-you-mean": (
        """
        cases:
          - id: a
            prompt: hi
            qualty: low
        """,
        [
            "prompt_suites/suite.yaml:4:",
            "case 'a'",
            "field 'qualty'",
            "did you mean 'quality'?",
            "allowed:",
        ],
    ),
    "unknown top-level key": (
        """
        defualts: {n: 1}
        cases:
          - {id: a, prompt: hi}
        """,
        [":1:", "field 'defualts'", "did you mean 'defaults'?"],
    ),
    "duplicate id": (
        """
        cases:
          - {id: a, prompt: hi}
          - {id: a, prompt: there}
        """,
        [":3:", "case 'a'", "field 'id'", "duplicate id (first used on line 2)"],
    ),
    "missing prompt": (
        """
        cases:
          - id: a
            size: 1024x1024
        """,
        [":2:", "case 'a'", "field 'prompt'", "missing"],
    ),
    "empty prompt": (
        """
        cases:
          - id: a
            prompt: "   "
        """,
        [":3:", "field 'prompt'", "non-empty string"],
    ),
    "bad size string": (
        """
        cases:
          - id: a
            prompt: hi
            size: 1024*1024
        """,
        [":4:", "field 'size'", "'1024*1024' is not a size", "WxH"],
    ),
    "size not allowed for the model": (
        """
        cases:
          - id: a
            prompt: hi
            model: dall-e-3
            size: 1024x1536
        """,
        [
            ":5:",
            "field 'size'",
            "cannot be used with dall-e-3",
            "allowed: 1024x1024, 1024x1792, 1792x1024",
        ],
    ),
    "gpt-image-2 custom size not a multiple of 16": (
        """
        cases:
          - id: a
            prompt: hi
            size: 1000x1000
        """,
        ["field 'size'", "multiples of 16"],
    ),
    "gpt-image-2 custom size ratio above 3:1": (
        """
        cases:
          - id: a
            prompt: hi
            size: 3840x1024
        """,
        ["field 'size'", "aspect ratio must be at most 3:1"],
    ),
    "n above 10": (
        """
        cases:
          - id: a
            prompt: hi
            n: 11
        """,
        [":4:", "field 'n'", "from 1 to 10, got 11"],
    ),
    "n zero": (
        """
        cases:
          - {id: a, prompt: hi, n: 0}
        """,
        ["field 'n'", "from 1 to 10, got 0"],
    ),
    "n above the model's maximum": (
        """
        cases:
          - {id: a, prompt: hi, model: dall-e-3, n: 2, quality: standard}
        """,
        ["field 'n'", "dall-e-3 takes at most n=1"],
    ),
    "quality not allowed for the model": (
        """
        cases:
          - id: a
            prompt: hi
            quality: hd
        """,
        [
            ":4:",
            "field 'quality'",
            "'hd' is not allowed for gpt-image-2",
            "allowed: auto, low, medium, high",
        ],
    ),
    "quality misspelt": (
        """
        cases:
          - {id: a, prompt: hi, quality: meduim}
        """,
        ["field 'quality'", "did you mean 'medium'?"],
    ),
    "max_cost zero": (
        """
        cases:
          - id: a
            prompt: hi
            max_cost: 0
        """,
        [":4:", "field 'max_cost'", "greater than 0, got 0"],
    ),
    "max_cost negative in defaults": (
        """
        defaults:
          max_cost: -0.5
        cases:
          - {id: a, prompt: hi}
        """,
        ["case 'a'", "field 'max_cost'", "greater than 0, got -0.5"],
    ),
    "matrix over an unknown field": (
        """
        cases:
          - id: a
            prompt: hi
            matrix:
              sizes: [1024x1024]
        """,
        [
            ":5:",
            "field 'matrix.sizes'",
            "cannot vary this field",
            "did you mean 'size'?",
            "allowed: model, size",
        ],
    ),
    "matrix with an empty list": (
        """
        cases:
          - id: a
            prompt: hi
            matrix: {size: []}
        """,
        ["field 'matrix.size'", "non-empty list"],
    ),
    "bad value inside a matrix": (
        """
        cases:
          - id: a
            prompt: hi
            matrix: {quality: [low, ultra]}
        """,
        ["case 'a'", "field 'quality'", "'ultra' is not allowed"],
    ),
    "unknown model": (
        """
        cases:
          - {id: a, prompt: hi, model: gpt-image-3}
        """,
        [
            "field 'model'",
            "unknown model 'gpt-image-3'",
            "imagegen_prices",
            "did you mean 'gpt-image-2'?",
        ],
    ),
    "bad id characters": (
        """
        cases:
          - {id: "hero sunset", prompt: hi}
        """,
        ["case 'hero sunset'", "field 'id'", "letters, digits"],
    ),
    "missing id": (
        """
        cases:
          - prompt: hi
        """,
        ["case '#1'", "field 'id'", "missing"],
    ),
    "reserved key in params": (
        """
        cases:
          - {id: a, prompt: hi, params: {size: 1024x1024}}
        """,
        ["field 'params'", "'size' is a case field"],
    ),
    "unknown expect key": (
        """
        cases:
          - id: a
            prompt: hi
            expect: {cuont: 1}
        """,
        ["field 'expect'", "did you mean 'count'?", "allowed: count, size, format, drift"],
    ),
    "bad expect format": (
        """
        cases:
          - {id: a, prompt: hi, expect: {format: gif}}
        """,
        ["field 'expect'", "format 'gif'", "allowed: png, jpeg, webp"],
    ),
    "unknown drift algorithm": (
        """
        cases:
          - {id: a, prompt: hi, expect: {drift: {pash: 3}}}
        """,
        ["drift: unknown algorithm 'pash'", "did you mean 'phash'?"],
    ),
    "bad tags": (
        """
        cases:
          - {id: a, prompt: hi, tags: "hero"}
        """,
        ["field 'tags'", "list of words"],
    ),
    "duplicate key in a mapping": (
        """
        cases:
          - id: a
            prompt: hi
            prompt: again
        """,
        [":4:", "field 'prompt'", "appears twice"],
    ),
    "empty cases": (
        """
        cases: []
        """,
        ["field 'cases'", "non-empty list"],
    ),
}


@pytest.mark.parametrize("text, expected", CASES.values(), ids=list(CASES))
def test_validation_error_names_file_case_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    for fragment in expected:
        assert fragment in problems[0], (fragment, problems[0])
    assert problems[0].startswith("prompt_suites/suite.yaml:")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        cases:
          - id: a
            prompt: "unterminated
          - id: b
        """,
    )
    assert len(problems) == 1
    assert "YAML syntax error" in problems[0]
    assert problems[0].startswith("prompt_suites/suite.yaml:")
    line = int(problems[0].split(":")[1])
    assert 3 <= line <= 5


def test_all_problems_of_a_file_are_listed_in_line_order(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        cases:
          - id: a
            prompt: hi
            n: 0
          - id: b
            prompt: hi
            sise: 1024x1024
        """,
    )
    assert [p.split(":")[1] for p in problems] == ["4", "7"]


def test_defaults_overrides_and_matrix(tmp_path: Path) -> None:
    path = tmp_path / "landing.yaml"
    path.write_text(
        textwrap.dedent(
            """
            suite: landing
            category: campaign-visuals
            defaults:
              quality: low
              params: {output_format: png, background: opaque}
              tags: [hero]
              expect: {count: 1}
            cases:
              - id: sunset
                prompt: A sunset
                size: 1536x1024
                quality: medium
                params: {output_format: jpeg}
                tags: [wide]
              - id: icon
                prompt: An icon
                matrix:
                  quality: [low, medium]
                  size: [1024x1024, 1024x1536]
            """
        )
    )
    suite = load_suite(path, PRICES)
    ids = [c.id for c in suite.cases]
    assert ids == [
        "sunset",
        "icon[quality=low-size=1024x1024]",
        "icon[quality=low-size=1024x1536]",
        "icon[quality=medium-size=1024x1024]",
        "icon[quality=medium-size=1024x1536]",
    ]
    sunset = suite.cases[0]
    assert sunset.quality == "medium"
    assert sunset.params == {"output_format": "jpeg", "background": "opaque"}
    assert sunset.tags == ("hero", "wide")
    assert sunset.expect.size == "1536x1024"
    assert sunset.expect.format == "JPEG"
    assert sunset.category == "campaign-visuals"
    assert sunset.request_body() == {
        "model": "gpt-image-2",
        "prompt": "A sunset",
        "n": 1,
        "size": "1536x1024",
        "quality": "medium",
        "output_format": "jpeg",
        "background": "opaque",
    }
    assert suite.cases[2].size == "1024x1536" and suite.cases[2].quality == "low"
    assert suite.cases[2].expect.size == "1024x1536"


def test_drift_off_and_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "cases:\n  - {id: a, prompt: x, expect: {drift: off}}\n  - {id: b, prompt: y, expect: {drift: {phash: 6}}}\n"
    )
    a, b = load_suite(path, PRICES).cases
    assert a.expect.drift is None
    assert b.expect.drift == {"phash": 6}


# ----------------------------------------------------------------- via pytest


def test_collection_error_is_readable_without_traceback(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester,
        "broken",
        """
        cases:
          - id: hero
            prompt: hi
            n: 12
        """,
    )
    write_suite(pytester, "good", "cases:\n  - {id: fine, prompt: hello}\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting prompt_suites/broken.yaml*",
            "prompt_suites/broken.yaml:4: case 'hero': field 'n': must be a whole number from 1 to 10, got 12",
        ]
    )
    # the good file is still collected
    result.stdout.fnmatch_lines(["prompt_suites/good.yaml::fine"])
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "pytest_imagegen/" not in out and "suite.py" not in out
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_broken_file_does_not_stop_other_files_running(project: pytest.Pytester) -> None:
    write_suite(project, "a_broken", "cases:\n  - {id: x, prompt: hi, size: big}\n")
    write_suite(
        project, "b_good", "cases:\n  - {id: fine, prompt: hello, size: 256x256, quality: low}\n"
    )
    result = project.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(failed=1, errors=1)  # fine fails: no cassette, nothing sent
    result.stdout.fnmatch_lines(["*a_broken.yaml:2: case 'x': field 'size': 'big' is not a size*"])


def test_yaml_syntax_error_via_pytest(pytester: pytest.Pytester) -> None:
    write_suite(pytester, "bad", "cases:\n  - id: a\n    prompt: [unclosed\n")
    result = pytester.runpytest("--collect-only")
    result.stdout.fnmatch_lines(["prompt_suites/bad.yaml:*: YAML syntax error*"])
    assert "Traceback" not in result.stdout.str()
