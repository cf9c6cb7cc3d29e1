"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KEY = "sk-benchmark-not-a-real-key"


@dataclass
class Run:
    seconds: float
    returncode: int
    max_rss_kb: int
    output: str


def run(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, check: bool = True
) -> Run:
    """Run a command; wall time and the peak RSS of that process (wait4). Its temporary
    files (pytest-xdist's base temp) go into ``cwd/.tmp``, removed with the work dir."""
    full_env = {**os.environ, **(env or {})}
    if "TMPDIR" not in (env or {}):
        (cwd / ".tmp").mkdir(exist_ok=True)
        full_env["TMPDIR"] = str(cwd / ".tmp")
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(args), cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        sys.stderr.write(output[-4000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(args)}")
    return Run(seconds, proc.returncode, usage.ru_maxrss, output)


def pytest_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


# A conftest.py for a benchmark project: wall time (perf_counter) around each test's
# protocol (setup, call, teardown), written to times.json at the session's end. JUnit XML
# rounds times to the millisecond, too coarse for replays of about 2 ms.
TIMER = """
import json, time
from pathlib import Path

import pytest

TIMES = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    TIMES[item.nodeid] = time.perf_counter() - start


def pytest_sessionfinish(session):
    Path(__file__).with_name("times.json").write_text(json.dumps(TIMES))
"""


def protocol_times(project: Path) -> dict[str, float]:
    """Per-test seconds from the last session of a project with :data:`TIMER` as its conftest."""
    import json

    times: dict[str, float] = json.loads((project / "times.json").read_text(encoding="utf-8"))
    return times


@contextmanager
def fake_server(latency: float = 0.0, *extra: str) -> Iterator[str]:
    """The project's fake images server in a separate process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_imagegen.fakeserver", "--port", "0",
         "--latency", str(latency), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        base = url.rstrip("/").removesuffix("/v1") + "/v1"
        TOKENS[base] = line.rsplit("X-Fake-Token:", 1)[-1].strip(" )\n")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="imagegen-bench-") as tmp:
        yield Path(tmp)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ratio_line(name: str, value: float, target: str, ok: bool) -> str:
    return f"{name:<44} {value:8.3f}   target {target:<8} {'MET' if ok else 'MISSED'}"


TOKENS: dict[str, str] = {}  # base URL -> the fake server's admin token


def stats(url: str) -> dict[str, int]:
    """The fake server's counters (requests, peak in flight, 429s sent, ...)."""
    import json
    import urllib.request

    request = urllib.request.Request(
        url.removesuffix("/v1") + "/_fake/stats", headers={"X-Fake-Token": TOKENS[url]}
    )
    with urllib.request.urlopen(request) as response:
        data: dict[str, int] = json.load(response)
    return data


def reset(url: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        url.removesuffix("/v1") + "/_fake/reset",
        data=b"{}",
        method="POST",
        headers={"X-Fake-Token": TOKENS[url]},
    )
    urllib.request.urlopen(request).close()
