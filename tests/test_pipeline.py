"""Issue 20: one paid-call pipeline for every recording path (SPEC §12) — the reproductions.

Each test here failed on the main before the pipeline (see the issue's numbering);
the path x fault matrix is tests/test_fault_matrix.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.prices import PriceTable

from .conftest import CANARY_KEY, EXIT_AFTER_CTRL_C, needs_xdist, spawn, write_suite

ONCE = "--imagegen-record-mode=once"
LIST_256 = PriceTable.load().list_cost("gpt-image-2", "256x256", "low", 1, "Picture 00").total


def cases(count: int, prefix: str = "Picture", size: str = "256x256") -> str:
    lines = "\n".join(f'  - {{id: c{i:02d}, prompt: "{prefix} {i:02d}"}}' for i in range(count))
    return f"defaults: {{size: {size}, quality: low}}\ncases:\n{lines}\n"


def ledger(root: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in root.rglob("ledger.jsonl")
        for line in path.read_text().splitlines()
    ]


def booked(root: Path) -> float:
    return sum(float(e["actual_cost"]) for e in ledger(root))  # type: ignore[arg-type]


def wait_for(condition: object, timeout: float = 30.0) -> None:
    ends = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < ends, "timed out waiting"
        time.sleep(0.02)


# ---------------------------------------------------------------- 1. Ctrl-C


@pytest.mark.parametrize(
    "workers, interrupts",
    [
        pytest.param([], 1, id="one-ctrl-c"),
        pytest.param([], 3, id="three-ctrl-cs"),
        pytest.param(["-n", "2"], 1, marks=needs_xdist, id="xdist"),
    ],
)
def test_ctrl_c_stops_sending_at_once_and_books_what_was_in_flight(
    project: pytest.Pytester, live_env: FakeImagesServer, workers: list[str], interrupts: int
) -> None:
    """1: with --imagegen-concurrency 4, 32 cases at 2 s, a SIGINT after the first answers
    went on to send and pay all 32 over the next 31 s."""
    live_env.latency = 2.0
    write_suite(project, "s", cases(32))
    proc = spawn(project, ONCE, "--imagegen-concurrency=4", "--imagegen-budget=1", *workers,
                 group=True)  # fmt: skip
    wait_for(lambda: live_env.requests >= 5, timeout=60)  # the second round is in flight
    sent = time.monotonic()
    for _ in range(interrupts):
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole group
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert took < EXIT_AFTER_CTRL_C, out  # the queue had 12 s left
    assert live_env.requests <= 8 * (2 if workers else 1), live_env.requests  # no new round
    requests = live_env.requests
    time.sleep(2.5)
    assert live_env.requests == requests  # nothing more was sent after the exit
    assert "Traceback" not in out, out
    lines = ledger(project.path)
    assert len(lines) == requests  # every request sent is booked: answered or in flight
    assert booked(project.path) >= requests * LIST_256 * 0.9


# --------------------------------------------------- 2. two processes, one recording


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_two_processes_recording_the_same_cases_pay_once(
    project: pytest.Pytester, live_env: FakeImagesServer, concurrency: str
) -> None:
    """2: two pytest processes recording the same 8 missing cases paid 16 (concurrency 4)
    or 12 (serial) requests; the one that waited for a lock now uses the other's cassette."""
    live_env.latency = 0.5
    write_suite(project, "s", cases(8))
    args = (ONCE, f"--imagegen-concurrency={concurrency}")
    first, second = spawn(project, *args), spawn(project, *args)
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], "\n=====\n".join(outs)
    assert live_env.requests == 8, outs
    assert len(ledger(project.path)) == 8


def test_a_lock_taken_on_a_removed_lock_file_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the oldest dependencies (filelock 3.12), two processes recording the same suite
    once paid twice: a session ending removed a lock file just as another process opened
    it, the lock that process then took was on the removed file, and the next process made
    a new one and recorded too. A lock on a file no longer there is let go and taken again."""
    from filelock import FileLock

    from pytest_imagegen.api.locks import file_lock

    original = FileLock._acquire
    removed: list[str] = []

    def racing(self: FileLock) -> None:  # another session removes the file meanwhile
        original(self)
        if not removed:
            removed.append(self.lock_file)
            os.unlink(self.lock_file)

    monkeypatch.setattr(FileLock, "_acquire", racing)
    lock = file_lock(tmp_path / "c.yaml", tmp_path / ".imagegen", timeout=10)
    with lock:
        assert removed == [lock.lock_file]
        held = os.fstat(lock._context.lock_file_fd)  # type: ignore[attr-defined]
        assert os.path.samestat(held, os.stat(lock.lock_file))  # the file there now
        other = subprocess.run(
            [sys.executable, "-c", "import filelock, sys; "
             "filelock.FileLock(sys.argv[1], timeout=0.2).acquire()", lock.lock_file],
            capture_output=True, text=True,
        )  # fmt: skip
        assert "Timeout" in other.stderr, other.stderr  # another process waits for it


# ------------------------------------------------------ 3. edits under concurrency


def test_concurrent_edits_are_recorded_and_replayed(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """3: edit cases with concurrency >= 2 were answered 200, then writing the cassette
    failed with RequestNotRead: nothing recorded, every run paid again."""
    from PIL import Image

    inputs = project.path / "prompt_suites" / "inputs"
    inputs.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (64, 64), (40 * i, 90, 200)).save(inputs / f"in{i}.png")
    lines = "\n".join(
        f'  - {{id: e{i}, prompt: "Edit {i}", image: inputs/in{i}.png}}' for i in range(3)
    )
    write_suite(project, "s", f"defaults: {{size: 256x256, quality: low}}\ncases:\n{lines}\n")
    project.runpytest(ONCE, "--imagegen-concurrency=3").assert_outcomes(passed=3)
    assert live_env.requests == 3
    assert len(list((project.path / "prompt_suites/cassettes/s").glob("*.yaml"))) == 3
    project.runpytest(ONCE, "--imagegen-concurrency=3").assert_outcomes(passed=3)
    assert live_env.requests == 3  # replayed


# --------------------------------------------------- 4. a Retry-After of a million


def test_a_huge_retry_after_fails_the_case_instead_of_hanging(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """4: one 429 with Retry-After 1000000 (or inf) and a limiter paused the whole session
    for ever; now the case fails at once saying what the provider asked for."""
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_max_inflight = 2\n")
    write_suite(project, "s", cases(2))
    live_env.inject({"status": 429, "retry_after": 1000000}, {"status": 429, "retry_after": "inf"})
    started = time.monotonic()
    result = project.runpytest(ONCE)
    assert time.monotonic() - started < 30
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*asked to wait 1,000,000 s (Retry-After)*"])
    result.stdout.fnmatch_lines(["*asked to wait forever (Retry-After)*"])
    assert booked(project.path) == 0.0  # answered with an error: not billed


# ------------------------------------------------- 5. billing above the price table

OVERBILLED = {"input_tokens": 10, "output_tokens": 272, "total_tokens": 282,
              "input_tokens_details": {"text_tokens": 10, "image_tokens": 0}}  # fmt: skip


@pytest.mark.parametrize(
    "budget, args", [("0.05", ["--imagegen-concurrency=16"]), ("0.02", [])], ids=["c16", "serial"]
)
def test_billing_above_the_table_calibrates_the_budget(
    project: pytest.Pytester, live_env: FakeImagesServer, budget: str, args: list[str]
) -> None:
    """5: a provider billing 272 output tokens for a low 1024² gpt-image-2 (the table says
    $0.006): budget 0.05 with concurrency 16 spent $0.0656, serial 0.02 spent $0.0205, with
    no word. Reservations now follow what was billed; the summary says so and how to fix."""
    write_suite(project, "s", cases(16, size="1024x1024"))
    live_env.inject({"usage": OVERBILLED, "count": 16})
    result = project.runpytest(ONCE, f"--imagegen-budget={budget}", *args)
    spent = booked(project.path)
    assert 0 < spent <= float(budget) + 1e-9, spent
    result.stdout.fnmatch_lines(
        [
            "*gpt-image-2 1024x1024 quality=low: the provider billed $0.0082 where the price "
            "table says $0.0060 (1.36x)*imagegen_prices*1024x1024: {low: 0.0082}*"
        ]
    )


# ------------------------------------------- 6. every unknown attempt is booked


def test_every_unknown_attempt_is_booked_and_reserved(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """6: timeout 1 s, one retry, 5 cases, a 3 s server, budget for two list costs: 4
    requests were sent, each of unknown outcome, booked once per case."""
    project.makeini(
        "[pytest]\nimagegen_backoff = 0.01\nimagegen_timeout = 1\nimagegen_max_retries = 1\n"
    )
    write_suite(project, "s", cases(5))
    live_env.latency = 3.0
    result = project.runpytest(ONCE, f"--imagegen-budget={2 * LIST_256 + 1e-6:.6f}")
    result.assert_outcomes(failed=5)
    assert live_env.requests == 2  # each attempt reserved its list cost: room for two
    assert booked(project.path) == pytest.approx(2 * LIST_256)
    result.stdout.fnmatch_lines(["*budget:*spent: $0.0020*"])


# ------------------------------------------------------- 7. incomplete usage


@pytest.mark.parametrize(
    "usage, expected",
    [
        ({"input_tokens": 10}, "list"),
        ({"input_tokens": 10, "output_tokens": 0}, "list"),
        ({"input_tokens": 10, "total_tokens": 50000}, 10 * 5e-6 + 49990 * 30e-6),
        ({"prompt_tokens": 10, "total_tokens": 50000}, 10 * 5e-6 + 49990 * 30e-6),
    ],
    ids=["no-output", "zero-output", "total-above-parts", "chat-total-above"],
)
def test_incomplete_usage_is_booked_at_the_higher_of_list_and_the_total(
    project: pytest.Pytester, live_env: FakeImagesServer, usage: dict[str, int], expected: object
) -> None:
    """7: these were booked at $0.00005."""
    write_suite(project, "s", cases(1))
    live_env.inject({"usage": usage})
    project.runpytest(ONCE, "--imagegen-report=r.json")
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    want = case["list_cost"] if expected == "list" else expected
    assert case["actual_cost"] == pytest.approx(want, abs=1e-6)
    assert booked(project.path) == pytest.approx(want, abs=1e-6)


# ---------------------------------------------------- 8. one source of truth


@pytest.mark.parametrize(
    "failure",
    [{"delay": 3}, {"raw": "not json"}],
    ids=["timeout", "unreadable"],
)
def test_every_figure_of_spend_is_the_booked_amount(
    project: pytest.Pytester, live_env: FakeImagesServer, failure: dict[str, object]
) -> None:
    """8: the summary, JSON actual_cost and JUnit said $0 for a timeout or an unreadable
    answer while the ledger and the budget said $0.0061."""
    project.makeini(
        "[pytest]\nimagegen_backoff = 0.01\nimagegen_timeout = 1\nimagegen_max_retries = 0\n"
    )
    write_suite(project, "s", cases(1))
    live_env.inject(failure)
    result = project.runpytest(ONCE, "--imagegen-budget=1", "--imagegen-report=r.json",
                               "--junitxml=j.xml")  # fmt: skip
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    junit = (project.path / "j.xml").read_text()
    figure = booked(project.path)
    assert figure == pytest.approx(LIST_256)
    assert case["actual_cost"] == pytest.approx(figure)
    assert f'name="actual_cost" value="{case["actual_cost"]}"' in junit
    result.stdout.fnmatch_lines(
        [f"spent: ${figure:.4f}*", f"budget: $1.0000  spent: ${figure:.4f}*"]
    )


# ------------------------------------------------ 9. the fake server keeps no key


def test_rerouted_calls_reach_the_fake_server_without_the_test_s_key(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """9: --imagegen-fake-server rerouted a marked test's SDK call with its real
    Authorization header, which the fake server kept and served at GET /_fake/stats."""
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    project.makepyfile(
        test_sdk="""
        import openai, pytest

        @pytest.mark.imagegen
        def test_logo():
            client = openai.OpenAI(base_url="https://api.example.invalid/v1", max_retries=0)
            client.images.generate(model="gpt-image-2", prompt="A logo", size="256x256",
                                   quality="low")
        """
    )
    from pytest_imagegen.api.redact import key_digest

    seen: list[object] = []
    real_start = FakeImagesServer.start

    def start(self: FakeImagesServer) -> FakeImagesServer:
        seen.append(self)
        return real_start(self)

    monkeypatch.setattr(FakeImagesServer, "start", start)
    project.runpytest(ONCE, "--imagegen-fake-server", "-p", "no:randomly").assert_outcomes(passed=1)
    (server,) = seen
    log = repr(server.stats())  # type: ignore[attr-defined]
    assert CANARY_KEY not in log and key_digest(CANARY_KEY) not in log
    assert key_digest("fake-server-key") in log


# ---------------------------------------------- 10. one deadline, one size cap


@pytest.mark.parametrize(
    "failure, ini, said",
    [
        ({"trickle": 0.25}, "imagegen_timeout = 2", "took longer than imagegen_timeout = 2 s"),
        ({"body_mb": 12}, "imagegen_max_response_mb = 4", "larger than imagegen_max_response_mb"),
        ({"gzip_bomb_mb": 64}, "imagegen_max_response_mb = 4", "larger than"),
    ],
    ids=["trickle", "huge-body", "gzip-bomb"],
)
def test_one_deadline_and_a_size_cap_for_the_whole_exchange(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    failure: dict[str, object],
    ini: str,
    said: str,
) -> None:
    """10: a body trickling a byte a second never timed out; a 200 MB body peaked at 1.5 GB
    and went whole into the cassette and the report; a 1 MB gzip bomb reached 3.2 GB."""
    project.makeini(f"[pytest]\nimagegen_backoff = 0.01\nimagegen_max_retries = 0\n{ini}\n")
    write_suite(project, "s", cases(1))
    live_env.inject(failure)
    started = time.monotonic()
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    assert time.monotonic() - started < 15
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{said}*"])
    assert booked(project.path) == pytest.approx(LIST_256)  # unknown outcome: list cost
    assert (project.path / "r.json").stat().st_size < 100_000
    assert not (project.path / "prompt_suites/cassettes/s/c00.yaml").exists()


# ------------------------------------- 11. locks and state in the project, removed


def test_locks_and_state_live_in_the_project_and_are_removed(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """11: lock files piled up in the system temp dir (+40 a run), where another local user
    could pre-create or hold them, and the budget's `<random>.tmp` could be planted."""
    state = project.path / ".imagegen"
    dead = state / "sessions" / "0123456789abcdef"
    dead.mkdir(parents=True)
    (dead / "owner.json").write_text(json.dumps({"pid": 2**22 + 12345}))  # no such process
    write_suite(project, "s", cases(4))
    project.runpytest(ONCE, "--imagegen-budget=1", "--imagegen-concurrency=2").assert_outcomes(
        passed=4
    )
    assert not state.exists() or oct(state.stat().st_mode & 0o777) == "0o700"
    assert not (state / "sessions").exists()  # the killed run's folder was reclaimed
    assert not (state / "locks").exists() or not list((state / "locks").iterdir())


# ------------------------------------------- 12. nothing sent outside the test loop


@pytest.mark.parametrize("option", ["--collect-only", "--setup-plan", "--setup-only"])
def test_nothing_is_sent_outside_the_test_loop(
    project: pytest.Pytester, live_env: FakeImagesServer, option: str
) -> None:
    """12: --setup-plan / --setup-only with concurrency recorded and paid every case."""
    write_suite(project, "s", cases(3))
    project.runpytest(ONCE, "--imagegen-concurrency=3", option)
    assert live_env.requests == 0


# --------------------------------------- 15. decompression bombs say so


def test_a_decompression_bomb_answer_says_image_too_large(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """15: a 30000² PNG in a response raised DecompressionBombError as a traceback."""
    write_suite(project, "s", cases(1))
    live_env.inject({"png": [30000, 30000]})
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*is too large*"])
    assert "Traceback" not in result.stdout.str() and "DecompressionBomb" not in result.stdout.str()


# ----------------------------------------- 16. signed download URLs replay


def test_url_images_with_a_token_replay_and_keep_no_token(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16: the recorded download URL lost its `token=` query, so replay failed "lacks
    image 0" and re-recording paid again."""
    write_suite(
        project,
        "s",
        "defaults: {model: dall-e-2, size: 256x256, params: {response_format: url}}\n"
        'cases:\n  - {id: c00, prompt: "Picture 00"}\n',
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    assert live_env.downloads == 1
    text = (project.path / "prompt_suites/cassettes/s/c00.yaml").read_text()
    assert "token=" not in text
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    project.runpytest().assert_outcomes(passed=1)
    assert live_env.requests == 1


# -------------------------------------------------- 20. reruns


def test_reruns_replace_results_and_replay_what_the_session_recorded(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """20: under --reruns 2 a marked test's list cost and the live-equivalent tripled and in
    --imagegen-record-mode=all it was re-sent and paid on every rerun."""
    pytest.importorskip("pytest_rerunfailures")
    project.makepyfile(
        test_rerun="""
        import os, httpx, pytest

        @pytest.mark.imagegen
        def test_logo():
            answer = httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
                json={"model": "gpt-image-2", "prompt": "A logo", "size": "256x256",
                      "quality": "low"},
                headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"]})
            assert answer.status_code == 200
            assert False, "fails after its call, every time"
        """
    )
    result = project.runpytest(
        "--imagegen-record-mode=all", "--reruns=2", "--imagegen-report=r.json"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1 and outcomes.get("rerun") == 2, outcomes
    assert live_env.requests == 1  # the reruns replayed what this session paid for
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["list_cost"] == pytest.approx(LIST_256 * 1.0, rel=0.5)
    assert case["list_cost"] < 2 * LIST_256


# ------------------------------------------- 21. a test's own chat images by size


def test_a_chat_call_s_images_are_priced_by_their_real_size(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """21: a 1024² image in a test's own chat call was preflighted as if <= 512 px, and the
    bill could be 1.5x (gpt-4.1) to 2.8x (gpt-4o-mini) the preflight."""
    project.makepyfile(
        test_chat="""
        import base64, io, os, httpx, pytest
        from PIL import Image

        @pytest.mark.imagegen
        def test_judge_by_hand():
            buffer = io.BytesIO()
            Image.new("RGB", (1024, 1024), (200, 30, 30)).save(buffer, "PNG")
            url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
            answer = httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/chat/completions",
                json={"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user",
                      "content": [{"type": "text", "text": "Is it red?"},
                                  {"type": "image_url", "image_url": {"url": url}}]}]},
                headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"]})
            assert answer.status_code == 200
        """
    )
    project.runpytest(ONCE, "--imagegen-report=r.json").assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["actual_cost"] > 0
    assert case["list_cost"] >= case["actual_cost"]  # the preflight is never below the bill


# ------------------------------------------ 22. no imports on a background thread


def test_no_background_import_thread() -> None:
    """22: a full run once failed with "SystemError: AST constructor recursion depth
    mismatch" while warmup.py imported modules on a thread racing the main one."""
    import importlib.util

    import pytest_imagegen.plugin  # noqa: F401

    assert importlib.util.find_spec("pytest_imagegen.warmup") is None
    assert not [t for t in threading.enumerate() if t.name == "imagegen-warmup"]


# --------------------------------- clients the guard does not record (the attacker's F3/F4)

URLLIB_TEST = """
import json, os, urllib.request, pytest

def post():
    request = urllib.request.Request(
        os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
        data=json.dumps({"model": "gpt-image-2", "prompt": "A logo", "size": "256x256",
                         "quality": "low"}).encode(),
        headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"],
                 "Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=10).read()

@pytest.mark.imagegen(max_cost=0.0001)
def test_marked():
    post()

def test_unmarked_under_the_fake_server():
    post()
"""


def test_calls_through_clients_the_guard_cannot_price_are_not_sent(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marked test calling through urllib (or requests, aiohttp) passed the ceiling, the
    budget and the ledger by; under --imagegen-fake-server such a call took the real key to
    the host it named."""
    project.makepyfile(test_other=URLLIB_TEST)
    result = project.runpytest(ONCE, "--imagegen-budget=0.0001", "-k", "not unmarked")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*through http.client / requests was not sent*httpx*"])
    assert live_env.requests == 0
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://api.example.invalid/v1")
    result = project.runpytest("--imagegen-fake-server", "-k", "unmarked")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*only httpx and openai SDK calls can go to the fake server*"])


# --------------------------------------------- nothing in the system temp directory


def test_a_run_leaves_nothing_in_the_system_temp_directory(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """Issue 20: lock files piled up in the system temp dir (+744 after the project's own
    tests). A run that records with a budget, a rate limit, concurrency, xdist workers, a
    judge and every report, then replays, lists the temp dir the same before and after."""
    import tempfile

    system_tmp = Path(os.environ.get("IMAGEGEN_SYSTEM_TMP") or tempfile.gettempdir())
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_max_inflight = 2\n")
    write_suite(
        project,
        "s",
        cases(4) + '  - {id: j, prompt: "A red kite", expect: {judge: "a kite"}}\n',
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "TEMP", "TMP")}
    args = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    runs = [
        [ONCE, "--imagegen-budget=1", "--imagegen-concurrency=2", "-n", "2",
         "--imagegen-report=r.json", "--imagegen-markdown=r.md", "--junitxml=j.xml"],
        ["--imagegen-html=review", "--imagegen-right-size"],
    ]  # fmt: skip
    if importlib.util.find_spec("xdist") is None:
        runs[0] = [a for a in runs[0] if a not in ("-n", "2")]
    before = set(os.listdir(system_tmp))
    for run in runs:
        done = subprocess.run([*args, *run], cwd=project.path, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
    left = sorted(set(os.listdir(system_tmp)) - before)
    ours = [name for name in left if "imagegen" in name or name.startswith("pytest-of")]
    assert ours == [], left
    assert not (project.path / ".imagegen").exists() or not any(
        (project.path / ".imagegen").iterdir()
    )
