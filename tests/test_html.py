"""SPEC §7: the --imagegen-html review page, checked as HTML and in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.review import html as htmlreport

from .conftest import write_suite

SCRIPT_PROMPT = (
    "A kite <script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
)


def test_page_is_escaped_and_self_contained(tmp_path: Path) -> None:
    results = [
        {"nodeid": "s.yaml::ok", "outcome": "passed", "prompt": SCRIPT_PROMPT, "request": {"n": 1}},
        {"nodeid": "s.yaml::bad", "outcome": "failed", "prompt": "p", "request": {}},
    ]
    index = htmlreport.write(tmp_path / "out", results)
    page = index.read_text()
    assert page.count("<script") == 1 and 'onerror="' not in page  # only the page's script
    assert "script-src &#x27;sha256-" in page  # a CSP lets only that script run
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # no external assets
    assert page.index("s.yaml::bad") < page.index("s.yaml::ok")  # failures first


def test_review_page_in_a_real_browser(
    project: pytest.Pytester, live_env: FakeImagesServer, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    quoted = json.dumps(SCRIPT_PROMPT)  # a JSON string is a YAML string
    write_suite(
        project,
        "s",
        f"""
        defaults: {{size: 256x256, quality: low}}
        cases:
          - id: aaa-script
            prompt: {quoted}
          - id: zzz-drift
            prompt: "A green kite"
        """,
    )
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=2)
    live_env.seed = 7  # zzz-drift is re-recorded after a "model update"
    result = project.runpytest("--imagegen-record-mode=all", "--imagegen-html=review", "-k", "zzz")
    result.assert_outcomes(failed=1)
    live_env.seed = 0
    result = project.runpytest("--imagegen-html=review")  # replay: aaa passes, zzz drifted
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["visual review: review/index.html"])
    result.stdout.fnmatch_lines(["  review: */review/index.html"])
    index = project.path / "review" / "index.html"

    driver = request.getfixturevalue("browser")  # started after the in-process runs
    driver.get(index.as_uri())  # type: ignore[attr-defined]
    assert driver.title == "pytest-imagegen review"  # type: ignore[attr-defined]
    assert driver.execute_script("return document.title") == "pytest-imagegen review"  # type: ignore[attr-defined]
    cases = driver.find_elements(By.CSS_SELECTOR, "section.case")  # type: ignore[attr-defined]
    assert [c.find_element(By.TAG_NAME, "h2").text for c in cases] == [
        "prompt_suites/s.yaml::zzz-drift",
        "prompt_suites/s.yaml::aaa-script",
    ]
    first = cases[0]
    assert "failed" in first.get_attribute("class")
    baseline = first.find_elements(By.CSS_SELECTOR, ".baseline img")
    current = first.find_elements(By.CSS_SELECTOR, ".current img")
    assert len(baseline) == 1 and len(current) == 1
    driver.execute_script(  # type: ignore[attr-defined]
        "Array.from(document.images).forEach(i => { i.loading = 'eager'; })"
    )
    import time

    time.sleep(0.5)
    widths = driver.execute_script(  # type: ignore[attr-defined]
        "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)"
    )
    # drifted: baseline, current, the slider's two and the difference; the other case:
    # baseline and current (identical: no difference image); all previews of 256 px images
    assert len(widths) == 7 and all(w == 256 for w in widths), widths
    assert "phash" in first.find_element(By.CSS_SELECTOR, ".current figcaption").text
    assert "list $0.00" in first.text and "phash ≤ 10" in first.text
    prompt = cases[1].find_element(By.CSS_SELECTOR, ".prompt").text
    assert prompt == SCRIPT_PROMPT  # shown as text, not run
    # the pure-CSS filter hides passing cases
    driver.find_element(By.CSS_SELECTOR, "label[for=only-failures]").click()  # type: ignore[attr-defined]
    assert cases[0].is_displayed() and not cases[1].is_displayed()
