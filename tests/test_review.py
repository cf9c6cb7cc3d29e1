"""SPEC §17: the review page for every case state, approvals from it, the review server.

Pages are driven in real headless Chromium; the review server runs in a real pytest
subprocess ended with SIGINT. Everything has a timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import write_suite

ONCE = "--imagegen-record-mode=once"
RUBRIC = "a flat icon of a paper plane on a green field"  # the fake judge: 4 of 6 words


def _suite(project: pytest.Pytester, min_score: float = 0.5, n: int = 1, extra: str = "") -> Path:
    return write_suite(
        project,
        "s",
        f"""
        defaults: {{size: 256x256, quality: low}}
        cases:
          - id: icon
            prompt: "A flat icon of a paper plane"
            expect:
              judge: {{rubric: "{RUBRIC}", min_score: {min_score}}}
          - id: drifted
            prompt: "A green kite"
          - id: stale
            prompt: "A red kite"
            n: {n}
          - id: ok
            prompt: "A blue kite"
        {extra}
        """,
    )


def _states_project(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    """Six cases: passed, judge failed (and drifted), drift failed, stale, no cassette,
    over its ceiling."""
    _suite(project)
    project.runpytest(ONCE).assert_outcomes(passed=4)
    live_env.seed = 7  # a "model update": re-recorded pictures look different
    project.runpytest("--imagegen-record-mode=all", "-k", "drifted or icon").assert_outcomes(
        failed=2
    )
    live_env.seed = 0
    _suite(
        project,
        min_score=0.9,  # the recorded 0.67 now fails, for free
        n=2,
        extra="""
          - id: new-case
            prompt: "A yellow kite"
          - id: pricey
            prompt: "A blue kite"
            max_cost: 0.0001
        """,
    )


def _report(project: pytest.Pytester) -> dict[str, Any]:
    cases = json.loads((project.path / "r.json").read_text())["cases"]
    return {c["nodeid"].split("::")[1]: c for c in cases}


def test_every_check_runs_and_every_state_reaches_the_reports(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _states_project(project, live_env)
    result = project.runpytest("--imagegen-html=review", "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=5)
    # a failing judge does not hide the drift: both in one failure
    text = result.stdout.str()
    judge_failure = text[text.index("expect.judge: image 1 scored 0.67") :]
    assert "visual drift from the accepted baseline" in judge_failure.split("case 'icon'")[0]
    cases = _report(project)
    assert cases["icon"]["drift"]["status"] == "fail"
    assert cases["icon"]["states"] == ["quality", "drift"]
    assert cases["stale"]["states"] == ["stale"]
    assert cases["stale"]["stale_changes"] == ["n: 1 → 2"]
    assert "--imagegen-record-mode=new_episodes" in cases["stale"]["rerecord_command"]
    assert cases["stale"]["rerecord_cost"] > 0
    assert cases["new-case"]["states"] == ["missing"]
    assert cases["pricey"]["states"] == ["ceiling"]
    assert cases["ok"]["states"] == ["passed"]
    # SPEC §12: report paths relative to the rootdir
    for image in cases["icon"]["drift"]["images"]:
        assert image["path"].startswith("prompt_suites/cassettes/images/"), image
    assert all(not Path(p).is_absolute() for p in cases["icon"]["drift"]["baseline"])
    page = (project.path / "review/index.html").read_text()
    assert "no images (the test failed before)" not in page


def test_failing_judged_and_stale_cases_in_a_real_browser(
    project: pytest.Pytester, live_env: FakeImagesServer, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By

    _states_project(project, live_env)
    project.runpytest("--imagegen-html=review").assert_outcomes(passed=1, failed=5)
    driver: Any = request.getfixturevalue("browser")
    driver.get((project.path / "review/index.html").as_uri())

    def card(case: str) -> Any:
        return driver.find_element(
            By.CSS_SELECTOR, f'section.case[data-nodeid="prompt_suites/s.yaml::{case}"]'
        )

    def loaded(element: Any) -> list[int]:
        return driver.execute_script(  # type: ignore[no-any-return]
            "return Array.from(arguments[0].querySelectorAll('img')).map(i => "
            "(i.scrollIntoView(), i.complete ? i.naturalWidth : -1))",
            element,
        )

    icon = card("icon")
    driver.execute_script("arguments[0].scrollIntoView()", icon)
    assert "quality check failed" in icon.text and "drift failed" in icon.text
    assert "judge score 0.67 (needs 0.9): shows 4 of 6 things the rubric names" in icon.text
    current = icon.find_elements(By.CSS_SELECTOR, "figure.current img")
    baseline = icon.find_elements(By.CSS_SELECTOR, "figure.baseline img")
    assert len(current) == 1 and len(baseline) == 1
    assert icon.find_elements(By.CSS_SELECTOR, "figure.difference img.diff")
    time.sleep(0.2)
    assert all(w > 0 for w in loaded(icon)), loaded(icon)
    assert "no accepted baseline" not in icon.text
    stale = card("stale")
    assert "n: 1 → 2" in stale.text
    assert "pytest --imagegen-record-mode=new_episodes prompt_suites/s.yaml::stale" in stale.text
    assert "estimated cost $0.0" in stale.text
    assert stale.find_elements(By.CSS_SELECTOR, "figure.baseline img")  # the baseline exists
    assert "recorded image 1" in stale.text  # what the cassette holds, for the old request
    assert "no cassette" in card("new-case").text
    assert "pytest --imagegen-record-mode=once" in card("new-case").text
    assert "above max_cost" in card("pricey").text
    ok = card("ok")
    assert "recorded for $0.0" in ok.text and "identical to the accepted image" in ok.text
    top = driver.find_element(By.ID, "summary").text
    assert "6 cases" in top and "1 stale cassette" in top and "1 no cassette" in top
    assert "live-equivalent" in top
    # failures first, and "show failures only" hides what passed
    order = [
        c.get_attribute("data-nodeid")
        for c in driver.find_elements(By.CSS_SELECTOR, "section.case")
    ]
    assert order[-1] == "prompt_suites/s.yaml::ok"
    driver.find_element(By.CSS_SELECTOR, "label[for=only-failures]").click()
    assert not ok.is_displayed() and stale.is_displayed()


def test_page_is_a_tenth_of_the_images_and_uses_previews(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 1024x1024, quality: low}
        cases:
          - {id: a, prompt: "A big kite"}
          - {id: b, prompt: "A big boat"}
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=2)
    project.runpytest("--imagegen-html=review").assert_outcomes(passed=2)
    review = project.path / "review"
    page = sum(p.stat().st_size for p in review.rglob("*") if p.is_file())
    images = project.path / "prompt_suites/cassettes/images"
    stored = sum(p.stat().st_size for p in images.iterdir())
    assert page <= stored / 10, (page, stored)
    assert not list(review.rglob("*.png"))  # no full image copied
    from PIL import Image

    for preview in (review / "previews").iterdir():
        with Image.open(preview) as im:
            assert im.format == "WEBP" and max(im.size) <= 512
    html = (review / "index.html").read_text()
    assert re.search(r'href="\.\./prompt_suites/cassettes/images/[0-9a-f]{64}\.png"', html)


def test_replay_json_report_and_markdown_are_readable(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    from markdown_it import MarkdownIt

    write_suite(
        project,
        "coffee",
        """
        cases:
          - id: hero
            size: 256x256
            quality: low
            matrix: {size: [256x256]}
            prompt: "A cup of coffee & a croissant"
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    project.runpytest("--imagegen-markdown=r.md").assert_outcomes(passed=1)
    md = (project.path / "r.md").read_text()
    assert "&#" not in md  # no HTML entities in the raw Markdown
    assert "`prompt_suites/coffee.yaml::hero[size=256x256]`" in md
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<code>prompt_suites/coffee.yaml::hero[size=256x256]</code>" in rendered


# ------------------------------------------------------------------ approvals


def _approvals(project: pytest.Pytester, entries: list[dict[str, Any]]) -> Path:
    path = project.path / "approvals.json"
    path.write_text(json.dumps({"format": 1, "approvals": entries}))
    return path


def _drift_project(project: pytest.Pytester, live_env: FakeImagesServer) -> str:
    """One case whose cassette was re-recorded with another look: replay fails on drift.
    Returns the sha256 of its current image."""
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: kite, prompt: "A green kite"}
          - {id: boat, prompt: "A red boat"}
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=2)
    live_env.seed = 7
    project.runpytest("--imagegen-record-mode=all", "-k", "kite").assert_outcomes(failed=1)
    live_env.seed = 0
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    return str(_report(project)["kite"]["drift"]["images"][0]["sha256"])


def test_approve_file_is_validated_and_applied_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    sha = _drift_project(project, live_env)
    baseline = project.path / "prompt_suites/baselines/s.json"
    before = baseline.read_bytes()
    bad = [
        {"nodeid": "prompt_suites/s.yaml::nope", "images": [{"sha256": sha}]},
        {"nodeid": "prompt_suites/s.yaml::kite", "images": [{"sha256": "0" * 64}]},
    ]
    result = project.runpytest(f"--imagegen-approve={_approvals(project, bad)}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*unknown test 'prompt_suites/s.yaml::nope'*",
            "*image 0000000000000000000000000000000000000000000000000000000000000000 of "
            "prompt_suites/s.yaml::kite is not in the image store*",
        ]
    )
    assert baseline.read_bytes() == before  # nothing written
    # an image whose bytes do not match its name
    stored = next((project.path / "prompt_suites/cassettes/images").glob(f"{sha}.*"))
    good = stored.read_bytes()
    stored.write_bytes(good + b"x")
    ok = [{"nodeid": "prompt_suites/s.yaml::kite", "images": [{"sha256": sha}]}]
    result = project.runpytest(f"--imagegen-approve={_approvals(project, ok)}")
    assert result.ret == 1 and "does not match its sha256" in result.stdout.str()
    assert baseline.read_bytes() == before
    stored.write_bytes(good)
    for forged in ({"format": 1, "approvals": "x"}, {"format": 2, "approvals": []}, [1]):
        (project.path / "approvals.json").write_text(json.dumps(forged))
        result = project.runpytest("--imagegen-approve=approvals.json")
        assert result.ret == 1 and "nothing" in result.stdout.str()
    ok[0]["cost_per_accepted"] = 0.0016
    result = project.runpytest(f"--imagegen-approve={_approvals(project, ok)}", "-n", "2")
    result.stdout.fnmatch_lines(["*approved 1 image(s) of 1 case(s)*"])
    assert result.ret == 0
    entry = json.loads(baseline.read_text())["cases"]["kite"]
    assert [i["sha256"] for i in entry["images"]] == [sha]
    assert set(entry["approved"]) == {"time", "by", "cost_per_accepted"}
    assert entry["approved"]["cost_per_accepted"] == 0.0016 and entry["approved"]["by"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["approved"]["time"])
    assert json.loads(baseline.read_text())["cases"]["boat"]  # the other entry is kept
    project.runpytest().assert_outcomes(passed=2)  # the next replay passes


def test_checkboxes_download_an_approvals_file_that_approve_applies(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from selenium.webdriver.common.by import By

    sha = _drift_project(project, live_env)
    project.runpytest("--imagegen-html=review").assert_outcomes(passed=1, failed=1)
    downloads = project.path / "downloads"
    downloads.mkdir()
    driver: Any = request.getfixturevalue("browser")
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.get((project.path / "review/index.html").as_uri())
    kite = driver.find_element(
        By.CSS_SELECTOR, 'section.case[data-nodeid="prompt_suites/s.yaml::kite"]'
    )
    button = driver.find_element(By.ID, "download-approvals")
    assert not button.is_enabled()
    kite.find_element(By.CSS_SELECTOR, "input.approve-case").click()
    assert button.is_enabled() and "(1 image)" in button.text
    button.click()
    target = downloads / "approvals.json"
    deadline = time.monotonic() + 20
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    data = json.loads(target.read_text())
    assert data["format"] == 1
    assert data["approvals"][0]["nodeid"] == "prompt_suites/s.yaml::kite"
    assert data["approvals"][0]["images"] == [{"sha256": sha}]
    result = project.runpytest(f"--imagegen-approve={target}")
    assert result.ret == 0, result.stdout.str()
    project.runpytest().assert_outcomes(passed=2)


# --------------------------------------------------------------- review server


class Review:
    """``pytest --imagegen-review`` in a subprocess: its URL, then SIGINT."""

    def __init__(self, project: pytest.Pytester, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--imagegen-review", *args],
            cwd=project.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.output = b""
        deadline = time.monotonic() + 60
        while b"imagegen review: http" not in self.output:
            assert self.proc.stdout is not None
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError(self.output.decode(errors="replace"))
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                self.output += os.read(self.proc.stdout.fileno(), 65536)
        m = re.search(rb"http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+)", self.output)
        assert m is not None
        self.port, self.token = int(m.group(1)), m.group(2).decode()
        self.url = m.group(0).decode()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        host: str | None = None,
        token: str | None = "query",
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sep = "&" if "?" in path else "?"
        url = path + (f"{sep}token={self.token}" if token == "query" else "")
        headers = {"Host": host or f"127.0.0.1:{self.port}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, url, body=data, headers=headers)
        response = conn.getresponse()
        out = response.status, response.read()
        conn.close()
        return out

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate(timeout=10)
        return (self.output + (rest or b"")).decode(errors="replace")


def test_review_server_refuses_without_token_foreign_host_or_outside_paths(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _drift_project(project, live_env)
    baseline = project.path / "prompt_suites/baselines/s.json"
    before = baseline.read_bytes()
    review = Review(project)
    try:
        assert len(review.token) >= 16
        status, page = review.request("GET", "/")
        assert status == 200 and b"prompt_suites/s.yaml::kite" in page
        assert review.request("GET", "/", token=None)[0] == 403
        assert review.request("GET", "/?token=" + "x" * 22, token=None)[0] == 403
        assert review.request("GET", "/", host="evil.example:80")[0] == 403
        assert review.request("GET", "/", host=f"evil.example:{review.port}")[0] == 403
        assert review.request("GET", "/full/..%2f..%2fs.yaml")[0] == 404
        assert review.request("GET", "/full/../../../../etc/passwd")[0] == 404
        assert review.request("GET", "/previews/../index.html")[0] == 404
        full = re.search(rb'href="(/full/[0-9a-f]{64}\.png)\?token', page)
        assert full is not None and review.request("GET", full.group(1).decode())[0] == 200
        decide = {"nodeid": "prompt_suites/s.yaml::kite", "action": "approve"}
        assert review.request("POST", "/decide", decide, token=None)[0] == 403
        assert review.request("POST", "/decide", decide, host="localhost:1")[0] == 403
        forged = {"nodeid": "../../../outside.yaml::kite", "action": "approve"}
        status, answer = review.request("POST", "/decide", forged)
        assert status == 400 and b"unknown test" in answer
        other = {**decide, "images": ["0" * 64]}
        assert review.request("POST", "/decide", other)[0] == 400
        assert baseline.read_bytes() == before
    finally:
        out = review.stop()
    assert review.proc.returncode == 1, out  # the run failed (drift); Ctrl-C ended it cleanly
    assert "imagegen review: stopped" in out and "Traceback" not in out
    assert not (project.path / ".imagegen/review").exists()


def test_review_server_approve_click_writes_the_baseline(
    project: pytest.Pytester, live_env: FakeImagesServer, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sha = _drift_project(project, live_env)
    baseline = project.path / "prompt_suites/baselines/s.json"
    review = Review(project)
    try:
        driver: Any = request.getfixturevalue("browser")
        driver.get(review.url)
        kite = driver.find_element(
            By.CSS_SELECTOR, 'section.case[data-nodeid="prompt_suites/s.yaml::kite"]'
        )
        images = driver.execute_script(
            "return Array.from(arguments[0].querySelectorAll('img')).map(i => "
            "(i.scrollIntoView(), i.naturalWidth))",
            kite,
        )
        approve = kite.find_element(By.CSS_SELECTOR, 'button[data-action="approve"]')
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", approve)
        approve.click()
        WebDriverWait(driver, 20).until(
            lambda d: "approved 1 image(s)" in kite.find_element(By.CSS_SELECTOR, ".decision").text
        )
        entry = json.loads(baseline.read_text())["cases"]["kite"]
        assert [i["sha256"] for i in entry["images"]] == [sha]
        assert entry["approved"]["by"] and entry["approved"]["cost_per_accepted"] is not None
        driver.refresh()  # the page says what was approved
        assert (
            "approved 1 image(s)"
            in driver.find_element(
                By.CSS_SELECTOR, 'section.case[data-nodeid="prompt_suites/s.yaml::kite"]'
            ).text
        )
    finally:
        out = review.stop()
    assert "imagegen review: stopped" in out, out
    assert all(w > 0 for w in images), images
    project.runpytest().assert_outcomes(passed=2)  # the next replay passes


def test_review_reject_removes_the_images_from_the_baseline(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project, "s", 'cases:\n  - {id: kite, prompt: "A kite", size: 256x256, quality: low}\n'
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    baseline = project.path / "prompt_suites/baselines/s.json"
    review = Review(project)
    try:
        status, answer = review.request(
            "POST", "/decide", {"nodeid": "prompt_suites/s.yaml::kite", "action": "reject"}
        )
    finally:
        review.stop()
    assert status == 200 and b"rejected 1 image(s)" in answer, answer
    entry = json.loads(baseline.read_text())["cases"]["kite"]
    assert entry["images"] == [] and entry["rejected"]["by"]
    project.runpytest().assert_outcomes(failed=1)  # no accepted baseline any more


# ---------------------------------------------------------------- right-sizing


def test_a_failed_variant_is_never_recommended(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - id: ad
            prompt: "An ad"
            quality: low
            matrix: {size: [256x256, 512x512]}
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=2)
    live_env.seed = 7
    project.runpytest("--imagegen-record-mode=all", "-k", "256x256").assert_outcomes(
        failed=1
    )  # the cheap variant now drifts
    live_env.seed = 0
    result = project.runpytest("--imagegen-right-size", "--imagegen-html=review")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*size=256x256 *FAILED: drift failed*", "*recommended: size=512x512*"]
    )
    page = (project.path / "review/index.html").read_text()
    card = re.search(r'<div class="variant failed" data-verdict="([^"]*)"', page)
    assert card is not None and card.group(1) == "failed: drift failed"
    assert (
        'class="variant recommended" data-verdict="recommended" data-nodeid="prompt_suites/s.yaml::ad[size=512x512]"'
        in page
    )


def test_update_baselines_records_the_approval(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project, "s", 'cases:\n  - {id: kite, prompt: "A kite", size: 256x256, quality: low}\n'
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    entry = json.loads((project.path / "prompt_suites/baselines/s.json").read_text())["cases"][
        "kite"
    ]
    assert "approved" not in entry  # accepted because it was recorded, not by a person
    assert entry["prompt"] == "A kite"
    project.runpytest("--imagegen-update-baselines").assert_outcomes(passed=1)
    entry = json.loads((project.path / "prompt_suites/baselines/s.json").read_text())["cases"][
        "kite"
    ]
    assert entry["approved"]["by"] and entry["approved"]["cost_per_accepted"] is not None


# ------------------------------------------------------------------ pytest-html


def test_pytest_html_report_shows_costs_verdict_and_a_preview(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    pytest.importorskip("pytest_html")
    _drift_project(project, live_env)
    result = project.runpytest("--html=report.html", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1)
    page = (project.path / "report.html").read_text()
    assert "pytest-imagegen</b>: drift failed" in page.replace("&lt;", "<").replace("&gt;", ">")
    assert "recorded for $0.0" in page and "list $0.0010" in page
    assert "data:image/jpeg;base64," in page or "image/jpeg" in page


def test_without_pytest_html_nothing_is_added(tmp_path: Path) -> None:
    from pytest_imagegen.review.htmlextras import add_extras

    class Config:
        class option:
            htmlpath = None

        class pluginmanager:
            @staticmethod
            def hasplugin(name: str) -> bool:
                return False

    class Report:
        pass

    report = Report()
    add_extras(Config(), report, {"nodeid": "x"})
    assert not hasattr(report, "extras")


def test_over_budget_case_and_the_budget_line(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project, "s", 'cases:\n  - {id: kite, prompt: "A kite", size: 256x256, quality: low}\n'
    )
    result = project.runpytest(
        ONCE, "--imagegen-budget=0.0001", "--imagegen-html=review", "--imagegen-report=r.json"
    )
    result.assert_outcomes(failed=1)
    assert _report(project)["kite"]["states"] == ["budget"]
    page = (project.path / "review/index.html").read_text()
    assert "over the budget" in page and "budget $0.0001" in page
    assert live_env.requests == 0
