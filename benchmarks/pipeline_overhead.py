"""What the paid-call pipeline (issue 20) costs: replay, recording per call, concurrency.

    python benchmarks/pipeline_overhead.py [--cases 100] [--size 1024x1024] [--rounds 3]
        [--record-cases 50] [--record-size 256x256]
        [--scale-cases 64] [--latency 2] [--concurrency 16] [--ctrl-c-cases 32] [--ctrl-c-latency 2]
        [--only replay record scale ctrl-c]
        [--quick]

(a) replay: N cases with one image each recorded from the fake server, then
    replayed offline with the drift check, per case (wall time around each
    test, the median, best of ``--rounds``): the same measurement as replay.py's pytest-imagegen side,
    against the floor (read + sha256 + phash of each image). Compare the
    figure with the same measurement on the commit before the pipeline
    (benchmarks/README.md says how); ``--before-ms`` prints that ratio.
(b) recording per call: M cases recorded serially at latency 0 through the
    pipeline (``--imagegen-record-mode=once --imagegen-budget=10``: preflight,
    budget reservation, limiter, one deadline and size cap, booking, ledger,
    cassette, sidecar, baseline), per case (wall time around each test, the
    median, best of ``--rounds``), vs the same M requests sent by bare httpx (one keep-alive
    client: post, parse the JSON, decode the image) to the same server. The
    server's picture cache is warmed first (M <= 64), so both sides get the
    same ready answers and the difference is the client side's.
(c) concurrency: ``--scale-cases`` cases at ``--latency`` with
    ``--imagegen-concurrency`` vs serial in one process, and the concurrent
    run against the ideal ceil(N / concurrency) x latency + start-up
    (concurrency_scale.py's measurement).
(d) Ctrl-C: ``--ctrl-c-cases`` cases at ``--ctrl-c-latency`` (2 s) with
    ``--imagegen-concurrency=4`` and a budget; one SIGINT to the process
    group once the second round is in flight; seconds from the SIGINT to the
    exit, and the requests sent (at most two rounds: nothing new after it).

Targets: (a) <= 3x the floor (SPEC §11) and within 10% of the pre-pipeline
figure (issue 20); (b) reported, no target; (c) >= 12x serial and <= 1.3x the
ideal (SPEC §11); (d) exit within 5 s, no new round sent (issue 20). Only pytest-imagegen (and pytest-xdist for (c)) is loaded
in (b) and (c) (PYTEST_DISABLE_PLUGIN_AUTOLOAD); (a) runs like replay.py.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    KEY,
    TIMER,
    fake_server,
    protocol_times,
    pytest_args,
    ratio_line,
    run,
    stats,
    workdir,
    write,
)
from concurrency_scale import measure_scale, print_scale
from replay import best_replay, cases, floor, write_suite_project

PARTS = ("replay", "record", "scale", "ctrl-c")
QUICK = {
    "cases": 3, "size": "256x256", "rounds": 1, "record_cases": 3,
    "scale_cases": 4, "latency": 0.2, "concurrency": 2, "ctrl_c_cases": 8, "ctrl_c_latency": 0.5,
}  # fmt: skip


def replay_part(root: Path, n: int, size: str, rounds: int, before_ms: float | None) -> None:
    ours = write_suite_project(root / "replay", cases(n, size))
    with fake_server() as url:
        env = {"IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY}
        run(pytest_args("prompt_suites", "--imagegen-record-mode=once"), ours, env=env)
    per_case, session = best_replay(ours, ["prompt_suites"], rounds)
    images = sorted((ours / "prompt_suites" / "cassettes" / "images").glob("*.png"))
    floor_case = floor(images, rounds)
    print(f"(a) replay: {n} cases, one {size} PNG each, drift check, best of {rounds} replays")
    print(f"    pytest-imagegen {per_case * 1e3:8.2f} ms per case (session {session:.2f} s)")
    print(f"    floor (read+sha256+phash) {floor_case * 1e3:8.2f} ms per case")
    over = per_case / floor_case
    print(ratio_line("replay / floor (per case)", over, "<= 3", over <= 3))
    if before_ms:
        ratio = per_case * 1e3 / before_ms
        print(f"    before the pipeline: {before_ms:.2f} ms per case (--before-ms)")
        print(ratio_line("replay / before the pipeline (per case)", ratio, "<= 1.10", ratio <= 1.1))


def bodies(n: int, size: str) -> list[dict[str, object]]:
    """Exactly the request bodies the suite of :func:`record_project` sends."""
    return [
        {"model": "gpt-image-2", "prompt": f"Overhead picture {i}", "n": 1, "size": size,
         "quality": "low"}
        for i in range(n)
    ]  # fmt: skip


def record_project(root: Path, items: list[dict[str, object]]) -> Path:
    write(root / "pytest.ini", "[pytest]\n")
    write(root / "conftest.py", TIMER)
    lines = ["defaults: {model: gpt-image-2, quality: low, n: 1}", "cases:"]
    lines += [f'  - {{id: c{i:03d}, prompt: "{b["prompt"]}", size: {b["size"]}}}'
              for i, b in enumerate(items)]  # fmt: skip
    write(root / "prompt_suites" / "s.yaml", "\n".join(lines) + "\n")
    return root


def bare_round(url: str, items: list[dict[str, object]]) -> list[float]:
    """Seconds per request: bare httpx, one keep-alive client, JSON parsed, image decoded."""
    import httpx

    times = []
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as client:
        for body in items:
            start = time.perf_counter()
            response = client.post(url + "/images/generations", json=body)
            response.raise_for_status()
            base64.b64decode(response.json()["data"][0]["b64_json"])
            times.append(time.perf_counter() - start)
    return times


def pipeline_round(root: Path, url: str) -> tuple[float, float]:
    """(median seconds per recorded case, session seconds): one serial recording from scratch."""
    for name in ("prompt_suites/cassettes", "prompt_suites/baselines", ".imagegen"):
        shutil.rmtree(root / name, ignore_errors=True)
    env = {"IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = run(pytest_args("-p", "pytest_imagegen.plugin", "prompt_suites",
                          "--imagegen-record-mode=once", "--imagegen-budget=10"),
              root, env=env)  # fmt: skip
    return statistics.median(protocol_times(root).values()), out.seconds


def record_part(root: Path, n: int, size: str, rounds: int) -> None:
    items = bodies(n, size)
    project = record_project(root / "record", items)
    with fake_server() as url:
        bare_round(url, items)  # warms the server's picture cache (64 answers) and httpx
        bare, piped, session = float("inf"), float("inf"), float("inf")
        for _ in range(rounds):  # alternated, so a burst of load hits both sides
            bare = min(bare, statistics.median(bare_round(url, items)))
            case, seconds = pipeline_round(project, url)
            piped, session = min(piped, case), min(session, seconds)
    print(f"(b) recording: {n} cases of {size} at latency 0, serial, best of {rounds} rounds")
    print(f"    bare httpx            {bare * 1e3:8.2f} ms per request")
    print(f"    through the pipeline  {piped * 1e3:8.2f} ms per case (session {session:.2f} s)")
    print(f"    pipeline overhead     {(piped - bare) * 1e3:8.2f} ms per call")
    print(f"{'pipeline / bare httpx (per call)':<44} {piped / bare:8.3f}   target none (reported)")


def _default_ctrl_c() -> None:
    """Ctrl-C as in a terminal, also when this script runs in the background of a shell
    (whose children start with SIGINT ignored, and Python keeps it so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_part(root: Path, n: int, latency: float) -> None:
    project = record_project(root / "ctrl-c", bodies(n, "256x256"))
    with fake_server(latency) as url:
        env = {**os.environ, "IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY,
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # fmt: skip
        proc = subprocess.Popen(
            pytest_args("-p", "pytest_imagegen.plugin", "prompt_suites",
                        "--imagegen-record-mode=once", "--imagegen-concurrency=4",
                        "--imagegen-budget=10"),
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_ctrl_c,
        )  # fmt: skip
        ends = time.monotonic() + 120
        while stats(url)["requests"] < 5:  # the first answers are in: the next round is out
            if time.monotonic() > ends or proc.poll() is not None:
                proc.kill()
                raise SystemExit("(d): the recording never reached its second round")
            time.sleep(0.02)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        proc.communicate(timeout=60)
        took = time.monotonic() - sent
        time.sleep(latency + 0.5)  # anything sent after the exit would have arrived by now
        requests = stats(url)["requests"]
    print(f"(d) Ctrl-C: {n} cases at {latency:g} s latency, concurrency 4, SIGINT in the "
          "second round")  # fmt: skip
    print(f"    exit {took:.2f} s after the SIGINT; requests sent {requests} of {n}")
    print(ratio_line("seconds from Ctrl-C to exit", took, "<= 5", took <= 5))
    print(ratio_line("requests sent / two rounds", requests / 8, "<= 1", requests <= 8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", "--n", type=int, default=100, help="(a) cases replayed")
    parser.add_argument("--size", default="1024x1024", help="(a) image size")
    parser.add_argument("--rounds", type=int, default=3, help="(a), (b): best of this many")
    parser.add_argument("--before-ms", type=float, help="(a) the pre-pipeline figure, to compare")
    parser.add_argument("--record-cases", type=int, default=50, help="(b) cases, at most 64")
    parser.add_argument("--record-size", default="256x256", help="(b) image size")
    parser.add_argument("--scale-cases", type=int, default=64, help="(c) cases")
    parser.add_argument("--latency", type=float, default=2.0, help="(c) server latency, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="(c)")
    parser.add_argument("--ctrl-c-cases", type=int, default=32, help="(d) cases")
    parser.add_argument("--ctrl-c-latency", type=float, default=2.0, help="(d) server latency")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="tiny N: " + str(QUICK))
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if args.record_cases > 64:
        parser.error("--record-cases: at most 64 (the fake server keeps 64 answers ready)")
    with workdir(args.keep) as root:
        if "replay" in args.only:
            replay_part(root, args.cases, args.size, args.rounds, args.before_ms)
        if "record" in args.only:
            record_part(root, args.record_cases, args.record_size, args.rounds)
        if "scale" in args.only:
            with fake_server(args.latency) as url:
                scale = measure_scale(
                    root / "scale", url, args.scale_cases, args.latency, args.concurrency
                )
            print(f"(c) concurrency: {args.scale_cases} cases at {args.latency:g} s latency")
            print_scale(scale)
        if "ctrl-c" in args.only:
            ctrl_c_part(root, args.ctrl_c_cases, args.ctrl_c_latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
