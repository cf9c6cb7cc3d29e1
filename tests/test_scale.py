"""SPEC §16: recording many requests at once, one shared rate limit, a progress line."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from pytest_imagegen.api.limiter import SharedLimiter, parse_rate
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, needs_xdist, write_suite


def cases(count: int, prefix: str = "Picture") -> str:
    lines = "\n".join(f'  - {{id: c{i:02d}, prompt: "{prefix} {i}"}}' for i in range(count))
    return f"defaults: {{size: 256x256, quality: low}}\ncases:\n{lines}\n"


def ledger(root: Path) -> list[dict[str, object]]:
    found = list(root.rglob("ledger.jsonl"))
    return [json.loads(x) for p in found for x in p.read_text().splitlines()]


def test_limiter_holds_in_flight_and_images_per_minute(tmp_path: Path) -> None:
    now = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = SharedLimiter.create(max_inflight=None, per_minute=3, directory=tmp_path)
    limiter._clock, limiter._sleep = (lambda: now[0]), sleep
    try:
        for _ in range(3):
            limiter.release(limiter.acquire(1))
        assert waits == []
        limiter.release(limiter.acquire(1))  # the 4th image in a minute waits for the window
        assert sum(waits) == pytest.approx(60.0, abs=1.0)
        limiter.pause(5)
        before = now[0]
        limiter.release(limiter.acquire(0))
        assert now[0] - before == pytest.approx(5.0, abs=0.2)
        # issue 20, reproduction 4: a Retry-After of 1000000 (or inf) paused every sender
        # for ever; the pause is capped at 60 s like the client's own waits
        for huge in (1_000_000.0, float("inf")):
            limiter.pause(huge)
            before = now[0]
            limiter.release(limiter.acquire(0))
            assert now[0] - before <= 60.5
    finally:
        limiter.remove()
    assert parse_rate("50/min") == 50 and parse_rate("12") == 12 and parse_rate("") is None


def test_limiter_caps_threads_in_flight(tmp_path: Path) -> None:
    limiter = SharedLimiter.create(max_inflight=2, per_minute=None, directory=tmp_path)
    peak, active, lock = [0], [0], threading.Lock()

    def work() -> None:
        slot = limiter.acquire(1)
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        ends = time.monotonic() + 2  # hold the slot until a second thread is in too (or 2 s),
        while active[0] < 2 and time.monotonic() < ends:  # so a busy machine cannot
            time.sleep(0.01)  # serialise them by chance
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        limiter.release(slot)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limiter.remove()
    assert peak[0] == 2


def test_fake_server_limits_answer_429_and_count_them(fake_server: FakeImagesServer) -> None:
    fake_server.rate_limit = 2
    body = {"model": "gpt-image-2", "prompt": "p", "size": "256x256", "quality": "low"}
    headers = {"Authorization": f"Bearer {CANARY_KEY}"}
    codes = [
        httpx.post(fake_server.url + "/images/generations", json=body, headers=headers)
        for _ in range(3)
    ]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert float(codes[2].headers["Retry-After"]) > 0
    stats = fake_server.stats()
    assert stats["rejected_429"] == 1 and stats["peak_inflight"] == 1


@pytest.mark.parametrize(
    "mode, expected",
    [("once", 2), ("new_episodes", 3), ("all", 4)],
)
def test_prefetch_sends_what_each_record_mode_sends(
    project: pytest.Pytester, live_env: FakeImagesServer, mode: str, expected: int
) -> None:
    write_suite(project, "s", cases(2))
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=2)  # c00, c01 fresh
    write_suite(project, "s", cases(4).replace('"Picture 1"', '"Picture 1, changed"'))
    live_env.reset()
    result = project.runpytest(
        f"--imagegen-record-mode={mode}",
        "--imagegen-concurrency=4",
        "--imagegen-report=r.json",
        "--imagegen-drift=off",  # c01's new prompt, a new look: not what this test is about
    )
    assert live_env.requests == expected  # nothing sent twice
    report = json.loads((project.path / "r.json").read_text())
    recorded = [c for c in report["cases"] if c["cassette"] == "recorded"]
    assert len(recorded) == expected
    assert all(c["actual_cost"] > 0 for c in recorded)
    assert report["summary"]["spent"] == pytest.approx(sum(c["actual_cost"] for c in recorded))
    if mode == "once":
        result.assert_outcomes(passed=3, failed=1)  # c01 is stale: an error in `once`
    else:
        result.assert_outcomes(passed=4)


def test_prefetch_failures_fail_their_test_and_retries_are_paid_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    project.makeini("[pytest]\nimagegen_backoff = 0.01\n")
    write_suite(project, "s", cases(3))
    live_env.inject({"status": 500}, {"status": 400, "code": "content_policy_violation"})
    result = project.runpytest("--imagegen-record-mode=once", "--imagegen-concurrency=2")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*HTTP 400*content_policy_violation*"])
    assert live_env.requests == 4  # 3 cases, one retried once; the refused one not re-sent
    outcomes = sorted(str(e["outcome"]) for e in ledger(project.path))
    assert outcomes == ["api error 400", "ok", "ok"]  # one line per logical call


def test_budget_is_a_hard_cap_under_concurrency(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", cases(32))
    live_env.latency = 0.2
    one = 0.0011  # a 256x256 low case's list cost, rounded up
    result = project.runpytest(
        "--imagegen-record-mode=once", "--imagegen-concurrency=16", f"--imagegen-budget={one * 5}"
    )
    billed = [e for e in ledger(project.path) if float(e["actual_cost"]) > 0]  # type: ignore[arg-type]
    assert live_env.requests <= 5 and len(billed) <= 5
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) <= 5 and outcomes["failed"] >= 27


def test_progress_line_and_quiet(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(project, "s", cases(4))
    result = project.runpytest("--imagegen-record-mode=once", "--imagegen-concurrency=4")
    result.stdout.fnmatch_lines(["imagegen prefetch: 4/4 done, 0 in flight, spent $0.00*, ETA 0s"])
    write_suite(project, "s", cases(4, "Again"))
    quiet = project.runpytest("--imagegen-record-mode=all", "--imagegen-concurrency=4", "-qq")
    assert "imagegen prefetch" not in quiet.stdout.str()


@needs_xdist
def test_one_limiter_for_two_workers_never_exceeds_the_server(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    live_env.max_inflight = 2  # the provider answers 429 beyond 2 in flight
    live_env.latency = 0.2
    project.makeini("[pytest]\nimagegen_max_inflight = 2\nimagegen_backoff = 0.01\n")
    write_suite(project, "s", cases(12))
    result = project.runpytest("-n", "2", "--imagegen-record-mode=once", "--imagegen-concurrency=4")
    result.assert_outcomes(passed=12)
    stats = live_env.stats()
    assert stats["rejected_429"] == 0 and stats["peak_inflight"] <= 2
    assert live_env.requests == 12
