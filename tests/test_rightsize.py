"""SPEC §14: cost per accepted image and the right-sizing report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.review import rightsize

from .conftest import needs_ocr, needs_xdist, write_suite

ONCE = "--imagegen-record-mode=once"
RIGHT = "--imagegen-right-size"


def _case(nodeid: str, cost: float, images: int, accepted: int, **extra: Any) -> dict[str, Any]:
    return {
        "nodeid": f"s.yaml::icon[{nodeid}]",
        "group": "s.yaml::icon",
        "variant": nodeid,
        "cassette": "recorded",
        "actual_cost": cost,
        "list_cost": cost * 1.1,
        "n": images,
        "images": images,
        "accepted": accepted,
        "min_accept_rate": 1.0,
        **extra,
    }


def test_advice_arithmetic_matches_hand_computed_values() -> None:
    half = rightsize.advice_for(0.5, 0.01)
    assert [(a.n, a.requests, a.cost) for a in half] == [
        (1, 2.0, 0.02),  # 1 / 0.5 requests of one image
        (2, 1.3333, 0.026667),  # 1 / (1 - 0.25) requests of two images
        (4, 1.0667, 0.042667),  # 1 / (1 - 0.0625) requests of four images
    ]
    assert [a.requests for a in rightsize.advice_for(1.0, 0.01)] == [1.0, 1.0, 1.0]
    assert [a.requests for a in rightsize.advice_for(0.0, 0.01)] == [None, None, None]


def test_ranking_recommendation_saving_and_exclusions() -> None:
    results = [
        _case("quality=high", cost=0.08, images=4, accepted=4),
        _case("quality=medium", cost=0.04, images=4, accepted=4),
        _case("quality=low", cost=0.004, images=4, accepted=2),  # 50%: below the rate
        _case("size=512", cost=0.002, images=4, accepted=4, excluded="profile 'x' allows ..."),
    ]
    (group,) = rightsize.groups(results)
    assert [v.label for v in group.variants] == [
        "size=512",
        "quality=low",
        "quality=medium",
        "quality=high",
    ]  # fmt: skip  (cheapest per accepted image first)
    assert group.recommended == "s.yaml::icon[quality=medium]"
    assert group.baseline == "s.yaml::icon[quality=high]"
    assert group.saving == pytest.approx(0.01) and group.saving_percent == 50.0
    assert not group.small_sample and group.note == ""
    lines = rightsize.terminal_lines([group])
    assert any("excluded: profile 'x'" in line for line in lines)
    assert any(
        "recommended: quality=medium; saves $0.0100 per accepted image (50%)" in line
        for line in lines
    )


def test_small_samples_and_no_passing_variant_are_said_plainly() -> None:
    (few,) = rightsize.groups([_case("n=1", cost=0.01, images=2, accepted=2)])
    assert few.small_sample and "too few to trust" in few.note
    (none,) = rightsize.groups([_case("a", cost=0.01, images=4, accepted=0)])
    assert none.recommended is None and "nothing to recommend" in none.note
    assert rightsize.economics(_case("a", cost=0.01, images=4, accepted=0)) == {
        "accept_rate": 0.0,
        "cost_per_accepted": None,
    }
    assert rightsize.shown_cost_per_accepted(None, 0) == "none accepted"


GROUP = """
    use_case: drafts
    cases:
      - id: poster
        prompt: 'Bakery poster, headline "GRAND OPENING"'
        n: 2
        expect: {text: "GRAND OPENING"}
        matrix:
          quality: [low, medium]
          size: [256x256, 512x256]
      - id: single
        prompt: 'Plain card that says "HELLO"'
        size: 256x256
        quality: low
        expect: {text: "GOODBYE"}
"""
PROFILES = "drafts: {max_size: 256x256, quality: [low, medium], max_cost: 0.1}\n"


@pytest.fixture
def group_project(project: pytest.Pytester, live_env: FakeImagesServer) -> pytest.Pytester:
    pytest.importorskip("rapidocr", reason="needs pip install '.[ocr]'")
    write_suite(project, "s", GROUP)
    (project.path / "prompt_suites/profiles.yaml").write_text(PROFILES)
    return project


def _stable(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["right_size"]


@needs_ocr
def test_report_everywhere_and_the_same_under_xdist(
    group_project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    p = group_project
    args = (RIGHT, "--imagegen-report=r.json", "--imagegen-markdown=r.md", "--junitxml=j.xml")
    result = p.runpytest(ONCE, *args)
    result.assert_outcomes(passed=4, failed=1)  # `single` does not say GOODBYE
    result.stdout.fnmatch_lines(
        [
            "*- imagegen right-size -*",
            "prompt_suites/s.yaml::poster  (passes at accept rate >= 100%)",
            "  * quality=low-size=256x256 * accepted 2/2 (100%)  per accepted $0.00*",
            "*quality=low-size=512x256 *excluded: profile 'drafts' allows sizes up to 256x256*",
            "  recommended: quality=low-size=256x256; saves $0.0* per accepted image (*%) against "
            "quality=medium-size=256x256",
            "  one accepted image takes on average: n=1: 1.00 requests, $0.00*; n=2: 1.00 "
            "requests, $0.00*; n=4: 1.00 requests, $0.00* (use the smallest n that supports the "
            "workflow)",
            "  note: only 2 image(s) behind the recommendation: too few to trust*",
        ]
    )
    report = json.loads((p.path / "r.json").read_text())
    (group,) = report["right_size"]
    assert group["recommended"] == "prompt_suites/s.yaml::poster[quality=low-size=256x256]"
    cases = {c["nodeid"]: c for c in report["cases"]}
    single = cases["prompt_suites/s.yaml::single"]
    assert single["accept_rate"] == 0.0 and single["cost_per_accepted"] is None
    best = cases[group["recommended"]]
    assert best["accept_rate"] == 1.0
    assert best["cost_per_accepted"] == pytest.approx(best["actual_cost"] / 2, abs=1e-6)
    md = (p.path / "r.md").read_text()
    assert "### Right-sizing: the cheapest setting that meets the brief" in md
    assert "**recommended**" in md and "none accepted" in md
    props = {
        (case.get("name"), prop.get("name")): prop.get("value")
        for case in ET.parse(p.path / "j.xml").getroot().iter("testcase")
        for prop in case.iter("property")
    }
    assert props[("single", "cost_per_accepted")] == "none accepted"
    assert props[("single", "accept_rate")] == "0.0"
    live_env.reset()
    serial = _stable(json.loads((p.path / "r.json").read_text()))
    p.runpytest(RIGHT, "--imagegen-report=r0.json")  # replay: $0, the same figures
    assert live_env.requests == 0
    assert _stable(json.loads((p.path / "r0.json").read_text())) == serial


@needs_ocr
@needs_xdist
def test_xdist_gives_the_same_report(group_project: pytest.Pytester) -> None:
    p = group_project
    p.runpytest(ONCE)
    p.runpytest(RIGHT, "--imagegen-report=a.json")
    p.runpytest(RIGHT, "--imagegen-report=b.json", "-n", "2")
    a = json.loads((p.path / "a.json").read_text())
    b = json.loads((p.path / "b.json").read_text())
    assert a["right_size"] == b["right_size"] and a["right_size"]


def test_estimate_shows_what_recording_a_group_costs(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", GROUP)
    (project.path / "prompt_suites/profiles.yaml").write_text(PROFILES)
    result = project.runpytest("--imagegen-estimate", RIGHT)
    assert result.ret == 0 and live_env.requests == 0
    result.stdout.fnmatch_lines(
        [
            "*- imagegen right-size estimate -*",
            "prompt_suites/s.yaml::poster: 4 variants, all of them live $0.0*; recording the 4 "
            "without a fresh cassette $0.0*",
            "  quality=low-size=512x256  $0.00*  cassette: missing  excluded by its use case*",
        ]
    )


def test_recording_a_group_respects_the_budget(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - id: icon
            prompt: "Flat icon"
            matrix: {quality: [low, high], size: [1024x1024]}
        """,
    )
    result = project.runpytest(ONCE, RIGHT, "--imagegen-budget=0.01")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*session budget $0.0100 would be exceeded*"])
    assert live_env.requests == 1


@needs_ocr
def test_right_size_section_in_a_real_browser(
    group_project: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    group_project.runpytest(ONCE, RIGHT, "--imagegen-html=review")
    index = Path(group_project.path / "review/index.html")
    driver = request.getfixturevalue("browser")
    driver.get(index.as_uri())
    cards = driver.find_elements(By.CSS_SELECTOR, "#right-size .variant")
    assert len(cards) == 4
    verdicts = [c.find_element(By.CSS_SELECTOR, ".verdict").text for c in cards]
    assert verdicts.count("recommended") == 1
    assert sum(v.startswith("excluded") for v in verdicts) == 2
    recommended = driver.find_element(By.CSS_SELECTOR, "#right-size .variant.recommended")
    assert (
        "quality=low-size=256x256" in recommended.text
        and "per accepted image $0.00" in recommended.text
    )
    widths = driver.execute_script(
        "return Array.from(document.querySelectorAll('#right-size img')).map(i => i.naturalWidth)"
    )
    assert sorted(widths) == [256, 256, 512, 512]
