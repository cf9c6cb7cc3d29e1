"""SPEC §13 (first part): expect.text read by OCR from real rendered pixels, cached per image."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_imagegen.checks.textmatch import match, normalise
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import write_suite

ONCE = "--imagegen-record-mode=once"
POSTER = """
    defaults: {{size: 256x256, quality: low}}
    cases:
      - id: poster
        prompt: 'A shop window poster that says "GRAND OPENING"'
        expect: {{text: {text}}}
"""
NO_ENGINE = """
import sys
import pytest_imagegen.checks.ocr as ocr

_loaded = ocr._engine
sys.modules["rapidocr"] = None  # as if the [ocr] extra were not installed
ocr._engine = None


def pytest_unconfigure():
    ocr._engine = _loaded  # the module outlives this run: leave it as the next test expects
"""


def test_matching_rules() -> None:
    assert normalise("Grand Opening!") == "GRANDOPENING"
    assert normalise("0pen 1l|") == "OPENIII"  # 0/O and 1/I/l/| folded
    assert match("GRAND OPENING", ["GRANDOPENING"]).similarity == 1.0
    lost = match("GRAND OPENING", ["GRAD OPENING"])
    assert round(lost.similarity, 2) == 0.92 and not lost.passes(0.95)
    inside = match("SALE", ["BIG SUMMER SALE TODAY", "noise"])
    assert inside.similarity == 1.0 and inside.found == "SALE"
    assert match("SALE", []).similarity == 0.0


def _ocr_files(root: Path) -> list[Path]:
    return sorted((root / "prompt_suites/cassettes/images").glob("*.ocr.json"))


@pytest.fixture
def ocr_installed() -> None:
    pytest.importorskip("rapidocr", reason="needs pip install '.[ocr]'")


def test_text_is_read_from_real_pixels_cached_and_replayed_without_the_engine(
    project: pytest.Pytester, live_env: FakeImagesServer, ocr_installed: None
) -> None:
    write_suite(project, "s", POSTER.format(text='"GRAND OPENING"'))
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (cache,) = _ocr_files(project.path)
    reading = json.loads(cache.read_text())
    # every letter read (engines differ only in the space between the words)
    assert [normalise(line) for line in reading["lines"]] == ["GRANDOPENING"]
    assert cache.name.startswith(reading["sha256"])
    assert re.fullmatch(r"rapidocr 3\.\d+\.\d+", reading["engine"])
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["text"] == [reading["lines"]] and case["accepted"] == 1
    project.makeconftest(NO_ENGINE)  # replay reads the cache, never the engine
    project.runpytest("--imagegen-html=html").assert_outcomes(passed=1)
    html = (project.path / "html/index.html").read_text()
    assert f"OCR read: {reading['lines'][0]}" in html


def test_missing_text_fails_showing_what_was_read(
    project: pytest.Pytester, live_env: FakeImagesServer, ocr_installed: None
) -> None:
    write_suite(project, "s", POSTER.format(text='["GRAND OPENING", "GRAND CLOSING"]'))
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "expect.text: image 1 does not say 'GRAND CLOSING': best match 'GRANDOPENING', "
            "similarity 0.67 < 0.95; OCR read: 'GRAND*OPENING'",
            "quality failures (expect.text, expect.judge): 1",
        ]
    )
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["accepted"] == 0


def test_without_the_extra_the_error_says_how_to_install(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", POSTER.format(text='"GRAND OPENING"'))
    project.makeconftest(NO_ENGINE)
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expect.text needs the OCR engine rapidocr with onnxruntime*"])
    assert "pip install 'pytest-imagegen[ocr]'" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_damaged_reading_cache_is_read_again(
    project: pytest.Pytester, live_env: FakeImagesServer, ocr_installed: None
) -> None:
    write_suite(project, "s", POSTER.format(text='"GRAND OPENING"'))
    project.runpytest(ONCE).assert_outcomes(passed=1)
    (cache,) = _ocr_files(project.path)
    cache.write_text('{"lines": [1, 2], "sha256": "../../etc"}')
    project.runpytest().assert_outcomes(passed=1)
    assert [normalise(x) for x in json.loads(cache.read_text())["lines"]] == ["GRANDOPENING"]


@pytest.mark.parametrize(
    "expect, message",
    [
        ("{text: [1]}", "text must be a string or a list of non-empty strings*"),
        ("{text: SALE, text_similarity: 1.5}", "text_similarity must be a number above 0*"),
    ],
)
def test_bad_text_expectations_are_collection_errors(
    project: pytest.Pytester, expect: str, message: str
) -> None:
    write_suite(project, "s", f'cases:\n  - {{id: a, prompt: "p", expect: {expect}}}\n')
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*case 'a': field 'expect': {message}"])
