"""Shared fixtures: an isolated environment and the fake images server on loopback."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

# Nothing of the test run may land in the system temp directory (SPEC §12): pytest's own
# tmp_path lives under --basetemp=.pytest-tmp (pyproject addopts) and everything else
# that asks for a temp dir (tempfile, subprocesses, Chromium) is sent to .pytest-tmp/tmp.
ROOT = Path(__file__).resolve().parent.parent
SYSTEM_TMP = Path(os.environ.setdefault("IMAGEGEN_SYSTEM_TMP", tempfile.gettempdir()))
PROJECT_TMP = ROOT / ".pytest-tmp" / "tmp"
PROJECT_TMP.mkdir(parents=True, exist_ok=True)
os.environ["TMPDIR"] = str(PROJECT_TMP)
tempfile.tempdir = None  # forget the cached system one

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


def _ocr_warmup() -> bytes:
    """A small picture with a word on it, for the OCR engine's first (loading) reading."""
    import io

    import PIL.ImageDraw

    image = PIL.Image.new("RGB", (160, 48), "white")
    PIL.ImageDraw.Draw(image).text((10, 16), "WARM UP", fill="black")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


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
with contextlib.suppress(ImportError):  # the OCR engine (onnxruntime, cv2, shapely) loads once
    import cv2  # noqa: F401
    import onnxruntime  # noqa: F401
    import rapidocr  # noqa: F401
    import shapely.geometry  # noqa: F401

    from pytest_imagegen.checks import ocr as _ocr

    _ocr.run_engine(_ocr_warmup())  # its models and lazily imported modules load on first use

#: tests that run pytester with ``-n``: skipped, with the reason shown, without pytest-xdist
needs_xdist = pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None,
    reason="needs pytest-xdist (pip install -e '.[test]' installs it)",
)
needs_ocr = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="needs the OCR engine: pip install -e '.[test,ocr]'",
)
needs_s3 = pytest.mark.skipif(  # the image store tests (issue 22)
    importlib.util.find_spec("s3fs") is None or importlib.util.find_spec("moto") is None,
    reason="needs s3fs and moto[server]: pip install -e '.[test]'",
)
XDIST_2 = pytest.param(["-n", "2"], marks=needs_xdist, id="xdist")

# Requests that escape a test's own fake server land here: a closed loopback
# port, so a mistake can never reach a real (paid) API.
DEAD_URL = "http://127.0.0.1:9/v1"
CANARY_KEY = "sk-canary-4f1d2a9b7c3e5d60"


@pytest.fixture(autouse=True)
def _own_ini(request: pytest.FixtureRequest) -> None:
    """A pytester project has its own (empty) ini file unless the test writes one: its
    folder lies inside this repository (--basetemp), whose pyproject.toml must not become
    the inner runs' configuration."""
    if "pytester" in request.fixturenames:
        path = request.getfixturevalue("pytester").path
        if not any((path / name).exists() for name in ("pytest.ini", "tox.ini", "pyproject.toml")):
            (path / "tox.ini").write_text("[pytest]\n", encoding="utf-8")


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


#: Seconds a recording may take to exit after Ctrl-C in a test. About 1.5 s here
#: (benchmarks/pipeline_overhead.py prints it against the issue's 5 s); the rest is room
#: for a loaded CI machine, whose other plugins (hypothesis, pytest-benchmark) load in
#: each xdist worker as it shuts down. Still far below a run that kept sending.
EXIT_AFTER_CTRL_C = 10.0


def spawn(project: pytest.Pytester, *args: str, group: bool = False) -> subprocess.Popen[str]:
    """``pytest`` in ``project`` as a real process (for signals and a second process);
    ``group``: in a session of its own, so ``os.killpg`` is a terminal's Ctrl-C."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=group,
        preexec_fn=_default_ctrl_c,
    )


def _default_ctrl_c() -> None:
    """The child handles Ctrl-C itself, whatever this process (an xdist worker) does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def pytest_configure(config: pytest.Config) -> None:
    """tmp_path folders under .pytest-tmp/run-<pid> of this run (xdist workers get theirs
    inside it from the controller); runs whose process is gone are cleared first."""
    if hasattr(config, "workerinput") or config.option.basetemp:
        return
    base = ROOT / ".pytest-tmp"
    for old in base.glob("run-*"):
        try:
            os.kill(int(old.name.split("-", 1)[1]), 0)
        except PermissionError:
            continue  # alive (another user's)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(old, ignore_errors=True)  # its run is over
    config.option.basetemp = str(base / f"run-{os.getpid()}")


def _system_tmp() -> set[str]:
    try:
        return set(os.listdir(SYSTEM_TMP))
    except OSError:
        return set()


_TMP_BEFORE = _system_tmp()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The whole run leaves nothing in the system temp directory (checked on the xdist
    controller, or the only process): a failure in CI, a warning elsewhere (other
    programs on a developer's machine write there too)."""
    if hasattr(session.config, "workerinput"):
        return
    left = sorted(_system_tmp() - _TMP_BEFORE)
    if not left:
        return
    message = f"the test run left {len(left)} entries in {SYSTEM_TMP}: {', '.join(left[:10])}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
