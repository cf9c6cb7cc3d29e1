"""Shared fixtures: an isolated environment and the fake images server on loopback."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

# Pre-imported: pytester's in-process runs unload modules first imported inside
# them; numpy cannot be loaded twice, and a reloaded httpcore raises exceptions
# that httpx no longer recognises.
import httpcore  # noqa: F401
import httpx
import imagehash
import numpy  # noqa: F401
import PIL.Image
import PIL.PngImagePlugin
import pytest
import vcr  # noqa: F401  (patches http clients while a cassette is open: load it once)

from pytest_imagegen.api.settings import KEY_ENV_VARS
from pytest_imagegen.fakeserver import FakeImagesServer

httpx.Client().close()  # loads httpx's lazy httpcore exception map
with contextlib.suppress(ImportError):  # openai >= 3 talks through httpx2: the same applies
    import httpcore2  # noqa: F401
    import httpx2
    import openai  # noqa: F401

    httpx2.Client().close()
imagehash.phash(PIL.Image.new("RGB", (8, 8)))  # loads scipy's FFT, which cannot load twice
imagehash.whash(PIL.Image.new("RGB", (8, 8)))  # and PyWavelets
with contextlib.suppress(ImportError):  # its pytest plugin imports it at every run's summary
    import hypothesis  # noqa: F401
with contextlib.suppress(ImportError):  # the OCR engine (and shapely, cv2) must load only once
    import rapidocr_onnxruntime  # noqa: F401
    import shapely.geometry  # noqa: F401

    from pytest_imagegen.checks import ocr as _ocr

    _ocr._get_engine()

#: tests that run pytester with ``-n``: skipped, with the reason shown, without pytest-xdist
needs_xdist = pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None,
    reason="needs pytest-xdist (pip install -e '.[test]' installs it)",
)
needs_ocr = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None,
    reason="needs the OCR engine: pip install -e '.[test,ocr]'",
)
XDIST_2 = pytest.param(["-n", "2"], marks=needs_xdist, id="xdist")

# Requests that escape a test's own fake server land here: a closed loopback
# port, so a mistake can never reach a real (paid) API.
DEAD_URL = "http://127.0.0.1:9/v1"
CANARY_KEY = "sk-canary-4f1d2a9b7c3e5d60"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*KEY_ENV_VARS, "IMAGEGEN_BASE_URL", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMAGEGEN_BASE_URL", DEAD_URL)


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester whose runs keep their tests in file order: pytest-randomly shuffles this suite
    (CI runs it so, to find order dependences), not the little sessions a test runs, whose
    output the test reads in order. (pytester clears PYTEST_ADDOPTS first; in-process and
    subprocess runs both read it.)"""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester


@pytest.fixture
def fake_server() -> Iterator[FakeImagesServer]:
    with FakeImagesServer() as server:
        yield server


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch, fake_server: FakeImagesServer) -> FakeImagesServer:
    """Point the plugin at the fake server with the canary key."""
    monkeypatch.setenv("IMAGEGEN_BASE_URL", fake_server.url)
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    return fake_server


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with fast retries (no real waiting between tries)."""
    pytester.makeini(
        """
        [pytest]
        imagegen_backoff = 0.01
        """
    )
    return pytester


def write_suite(pytester: pytest.Pytester, name: str, text: str) -> Path:
    """Write ``prompt_suites/<name>.yaml`` (dedented) and return its path."""
    path = pytester.path / "prompt_suites" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


SMALL_CASE = """
    cases:
      - id: {id}
        prompt: "{prompt}"
        size: 256x256
        quality: low
"""


def _find(name: str, *more: str) -> str | None:
    for candidate in (name, *more):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture
def browser() -> Iterator[object]:
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if not chromium or not driver_path:
        why = (
            "this test needs Chromium and ChromeDriver: `apt-get install chromium "
            "chromium-driver` (.ci/run installs them)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)  # CI must really drive the browser
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
