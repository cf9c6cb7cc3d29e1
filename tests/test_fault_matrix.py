"""Issue 20: every recording path x every fault, against the loopback fake server.

Each cell checks what SPEC §12 promises whatever goes wrong:

* the server saw no more requests than the budget allows at list cost, and no more
  was billed than the budget;
* every figure of spend is the same booked amount: the terminal summary, the JSON
  report, JUnit, the ledger and the budget;
* a second run sends nothing for what was paid (answers that came back were kept);
* no API key in any file or output, and no traceback.

A new path joins the matrix by adding one entry to ``PATHS``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from PIL import Image

from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.prices import PriceTable

from .conftest import CANARY_KEY, EXIT_AFTER_CTRL_C, spawn

PRICES = PriceTable.load()
ONCE = "--imagegen-record-mode=once"
INI = (
    "[pytest]\nimagegen_backoff = 0.01\nimagegen_timeout = 1\nimagegen_max_retries = 1\n"
    "imagegen_max_response_mb = 1\n"
)


def image_cost(prompt: str, model: str = "gpt-image-2") -> float:
    quality = "standard" if model.startswith("dall-e") else "low"
    return PRICES.list_cost(model, "256x256", quality, 1, prompt).total


# ------------------------------------------------------------------ the paths

SUITE_1 = 'defaults: {size: 256x256, quality: low}\ncases:\n  - {id: a, prompt: "Picture A"}\n'
SUITE_2 = SUITE_1 + '  - {id: b, prompt: "Picture B"}\n'
HTTPX_TEST = """
import os, httpx, pytest

@pytest.mark.imagegen
def test_a():
    answer = httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
        json={"model": "gpt-image-2", "prompt": "Picture A", "size": "256x256",
              "quality": "low"},
        headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"]}, timeout=30)
    assert answer.status_code == 200, answer.text[:200]
"""
SDK_TEST = """
import os, openai, pytest

@pytest.mark.imagegen
def test_a():
    client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                           api_key=os.environ["IMAGEGEN_API_KEY"], max_retries=1, timeout=30)
    client.images.generate(model="gpt-image-2", prompt="Picture A", size="256x256",
                           quality="low")
"""
FIXTURE_TEST = """
def test_a(imagegen):
    imagegen.generate("Picture A", size="256x256", quality="low")
"""


@dataclass
class Path_:
    """One recording path: the files of a project whose run makes one paid call each test,
    the route of the fault (images, chat or files), the list cost of one call."""

    files: Callable[[pytest.Pytester], None]
    calls: int  # paid calls a full recording makes
    list_cost: float  # of the cheapest call
    route: str = "images"
    args: list[str] = field(default_factory=list)
    needs: str | None = None  # a module the path needs


def _suite(text: str) -> Callable[[pytest.Pytester], None]:
    def make(project: pytest.Pytester) -> None:
        (project.path / "prompt_suites").mkdir(exist_ok=True)
        (project.path / "prompt_suites" / "s.yaml").write_text(text)

    return make


def _test(text: str) -> Callable[[pytest.Pytester], None]:
    return lambda project: project.makepyfile(test_paths=text) and None


def _edit(project: pytest.Pytester) -> None:
    suites = project.path / "prompt_suites"
    suites.mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (30, 90, 200)).save(suites / "in.png")
    (suites / "s.yaml").write_text(
        "defaults: {size: 256x256, quality: low}\n"
        'cases:\n  - {id: a, prompt: "Picture A", image: in.png}\n'
    )


JUDGE = (
    "defaults: {size: 256x256, quality: low}\ncases:\n"
    '  - {id: a, prompt: "Picture A", expect: {judge: "a picture", drift: off}}\n'
)
URL = (
    "defaults: {model: dall-e-2, size: 256x256, params: {response_format: url}}\n"
    'cases:\n  - {id: a, prompt: "Picture A"}\n'
)
JUDGE_COST = PRICES.judge_list_cost("gpt-4.1-mini", 400, 200)

PATHS = {
    "suite": Path_(_suite(SUITE_1), 1, image_cost("Picture A")),
    "concurrent": Path_(
        _suite(SUITE_2), 2, image_cost("Picture A"), args=["--imagegen-concurrency=2"]
    ),
    "xdist": Path_(_suite(SUITE_2), 2, image_cost("Picture A"), args=["-n", "2"], needs="xdist"),
    "marked-httpx": Path_(_test(HTTPX_TEST), 1, image_cost("Picture A")),
    "marked-sdk": Path_(_test(SDK_TEST), 1, image_cost("Picture A"), needs="openai"),
    "fixture": Path_(_test(FIXTURE_TEST), 1, image_cost("Picture A")),
    "edit": Path_(_edit, 1, image_cost("Picture A")),
    "judge": Path_(_suite(JUDGE), 2, min(JUDGE_COST, image_cost("Picture A")), route="chat"),
    "url-download": Path_(_suite(URL), 1, image_cost("Picture A", "dall-e-2"), route="files"),
}

# ------------------------------------------------------------------ the faults

#: what the fault matrix injects; the usage faults need a 2xx answer, so they always go to
#: the images (or chat) call, never to a download
FAULTS: dict[str, dict[str, object]] = {
    "timeout": {"delay": 2.5},
    "trickle": {"trickle": 0.3},
    "drop": {"drop": True},
    "500-then-200": {"status": 500},
    "retry-after-huge": {"status": 429, "retry_after": 1000000},
    "usage-incomplete": {"usage": {"input_tokens": 10}},
    "billed-above-table": {"usage": "x1.36"},
    "huge-body": {"body_mb": 3},
    "gzip-bomb": {"gzip_bomb_mb": 16},
    "bomb-png": {"png": [30000, 30000]},
    "sigint": {"delay": 3},
    "second-process": {},
}


def _fault(name: str, path: Path_) -> dict[str, object]:
    fault = dict(FAULTS[name])
    usage = fault.get("usage")
    if usage == "x1.36":  # billed 1.36x the table (272 tokens for a low 1024² image)
        tokens = round(path.list_cost * 1.36 / 30e-6)
        fault["usage"] = {"input_tokens": 1, "output_tokens": tokens,
                          "input_tokens_details": {"text_tokens": 1, "image_tokens": 0}}  # fmt: skip
    route = "images" if usage is not None and path.route == "files" else path.route
    if route != "images":
        fault["only"] = route
    return fault


# ------------------------------------------------------------------ the checks


@dataclass
class Run:
    out: str
    requests: int
    report: dict[str, object] | None


def _figures(project: pytest.Pytester, run: Run, budget: float) -> dict[str, float]:
    """Every figure of spend the run shows."""
    lines = [
        json.loads(x)
        for p in project.path.rglob("ledger.jsonl")
        for x in p.read_text().splitlines()
    ]
    out = {"ledger": sum(float(e["actual_cost"]) for e in lines)}
    if run.report is not None:
        cases = run.report["cases"]  # type: ignore[index]
        out["json"] = sum(float(c["actual_cost"] or 0) for c in cases)  # type: ignore[union-attr]
    junit = project.path / "j.xml"
    if junit.is_file():
        values = [
            float(p.get("value") or 0)
            for p in ET.parse(junit).getroot().iter("property")
            if p.get("name") == "actual_cost"
        ]
        out["junit"] = sum(values)
    spent = re.search(r"^spent: \$([0-9.]+)", run.out, re.M)
    if spent:
        out["summary"] = float(spent.group(1))
    held = re.search(r"^budget: \$[0-9.]+  spent: \$([0-9.]+)", run.out, re.M)
    if held:
        out["budget"] = float(held.group(1))
    return out


def _no_key_anywhere(project: pytest.Pytester, *outputs: str) -> None:
    needle = CANARY_KEY.encode()
    for text in outputs:
        assert CANARY_KEY not in text
    for path in project.path.rglob("*"):
        if path.is_file() and path.suffix not in (".py",):
            assert needle not in path.read_bytes(), path


def _run(project: pytest.Pytester, server: FakeImagesServer, args: list[str]) -> Run:
    before = server.requests + server.chat_requests + server.downloads
    result = project.runpytest(*args)
    out = result.stdout.str() + result.stderr.str()
    report_path = project.path / "r.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return Run(out, server.requests + server.chat_requests + server.downloads - before, report)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("path_name", list(PATHS))
def test_fault_matrix(
    project: pytest.Pytester, live_env: FakeImagesServer, path_name: str, fault: str
) -> None:
    path = PATHS[path_name]
    if path.needs:
        pytest.importorskip(path.needs)
    project.makeini(INI)
    path.files(project)
    budget = round(4 * path.list_cost * path.calls, 6)
    args = [ONCE, f"--imagegen-budget={budget}", "--imagegen-report=r.json", "--junitxml=j.xml",
            "-p", "no:randomly", *path.args]  # fmt: skip
    injected = _fault(fault, path)
    if fault == "second-process":
        live_env.latency = 0.5
        procs = [spawn(project, *args[:1], *path.args, group=True) for _ in range(2)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        sent = live_env.requests + live_env.chat_requests
        assert sent <= path.calls, outs  # paid once, whichever process recorded
        for out in outs:
            assert "Traceback" not in out, out
        _no_key_anywhere(project, *outs)
        live_env.latency = 0.0
        again = _run(project, live_env, [ONCE, *path.args])
        assert again.requests == 0, again.out
        return
    if fault == "sigint":
        live_env.inject({**injected, "count": 8})
        proc = spawn(project, *args, group=True)
        ends = time.monotonic() + 60
        while live_env.failures_started == 0 and proc.poll() is None:
            assert time.monotonic() < ends
            time.sleep(0.02)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        stopped = time.monotonic()
        out = proc.communicate(timeout=30)[0]
        assert time.monotonic() - stopped < EXIT_AFTER_CTRL_C, out
        assert "Traceback" not in out, out
        report = project.path / "r.json"
        run = Run(out, 0, json.loads(report.read_text()) if report.is_file() else None)
        figures = _figures(project, run, budget)
        assert figures["ledger"] <= budget + 1e-9
        assert figures["ledger"] >= path.list_cost * 0.99  # the call in flight is booked
        if "-n" not in path.args:  # the in-process summary knows the interrupted test
            assert figures.get("summary", figures["ledger"]) == pytest.approx(
                figures["ledger"], abs=6e-5
            ), (figures, out)
        _no_key_anywhere(project, out)
        return
    live_env.inject(injected)
    run = _run(project, live_env, args)
    assert "Traceback" not in run.out and "During handling" not in run.out, run.out
    figures = _figures(project, run, budget)
    assert run.requests * path.list_cost <= budget + 1e-9, (run.requests, run.out)
    assert figures["ledger"] <= budget + 1e-9, (figures, run.out)
    for name, value in figures.items():
        tolerance = 6e-5 if name in ("summary", "budget") else 2e-6  # the summary rounds
        assert value == pytest.approx(figures["ledger"], abs=tolerance), (name, figures, run.out)
    _no_key_anywhere(project, run.out)
    # a second run sends nothing for what was paid and answered
    recorded = [
        c["nodeid"]
        for c in (run.report or {}).get("cases", [])  # type: ignore[union-attr]
        if c["cassette"] == "recorded"
    ]
    if recorded:
        (project.path / "r.json").unlink()
        again = _run(project, live_env, [ONCE, "--imagegen-report=r.json", "-p", "no:randomly"])
        replayed = {
            c["nodeid"]: c["cassette"]
            for c in (again.report or {}).get("cases", [])  # type: ignore[union-attr]
        }
        for nodeid in recorded:
            assert replayed.get(nodeid) == "replayed", (nodeid, again.out)
        if len(recorded) == len(replayed):
            # a judge answer that was lost (its call booked at list cost) is judged once more
            # by `once`: it was never recorded; everything that came back is replayed
            assert again.requests <= (1 if path.route == "chat" else 0), again.out
