"""Recording at API scale: serial vs --imagegen-concurrency, and a limited provider.

    python benchmarks/concurrency_scale.py [--cases 64] [--latency 2] [--concurrency 16]

1. N cases at the given latency, recorded serially and with --imagegen-concurrency
   in one process: the speed-up, and the concurrent run against its ideal
   (ceil(N / concurrency) x latency + start-up, start-up measured as the same
   command replaying the recorded cassettes).
2. The fake server limited to 8 requests in flight and ``imagegen_max_inflight = 8``:
   429s received and failed cases (target: zero and zero).
3. ``-n 4 --imagegen-concurrency=4`` with the same limit, for reference.

Targets (SPEC §11): >= 12x faster than serial and within 1.3x of the ideal;
zero 429s and zero failures with the shared limit.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import KEY, fake_server, pytest_args, ratio_line, reset, run, stats, workdir, write

# clean room: only pytest-imagegen and pytest-xdist are loaded
ENV = {"IMAGEGEN_API_KEY": KEY, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
PLUGINS = ["-p", "pytest_imagegen.plugin", "-p", "xdist.plugin", "prompt_suites"]


@dataclass
class Scale:
    """Serial vs concurrent recording of the same cases (wall times in seconds)."""

    cases: int
    latency: float
    concurrency: int
    serial: float
    concurrent: float
    startup: float  # the same command replaying the recorded cassettes: no requests

    @property
    def ideal(self) -> float:
        return math.ceil(self.cases / self.concurrency) * self.latency + self.startup

    @property
    def speedup(self) -> float:
        return self.serial / self.concurrent

    @property
    def over_ideal(self) -> float:
        return self.concurrent / self.ideal


def write_suite(root: Path, cases: int) -> None:
    lines = ["defaults: {model: gpt-image-2, quality: low, size: 256x256}", "cases:"]
    lines += [f'  - {{id: c{i:03d}, prompt: "Scale picture {i}"}}' for i in range(cases)]
    write(root / "prompt_suites" / "s.yaml", "\n".join(lines) + "\n")


def fresh(root: Path) -> None:
    for name in ("cassettes", "baselines"):
        shutil.rmtree(root / "prompt_suites" / name, ignore_errors=True)


def measure_scale(
    root: Path, url: str, cases: int, latency: float, concurrency: int,
    env: Mapping[str, str] | None = None,
) -> Scale:  # fmt: skip
    """Record ``cases`` serially, then with ``concurrency``, from the fake server at ``url``
    (started with ``latency``); then time a replay of them as the start-up."""
    write_suite(root, cases)
    write(root / "pytest.ini", "[pytest]\n")
    full_env = {**ENV, **(env or {}), "IMAGEGEN_BASE_URL": url}
    times = {}
    for n in (1, concurrency):
        fresh(root)
        reset(url)
        out = run(pytest_args(*PLUGINS, "--imagegen-record-mode=once",
                              f"--imagegen-concurrency={n}"), root, env=full_env)  # fmt: skip
        times[n] = out.seconds
        print(f"concurrency {n:>2}: {out.seconds:7.2f} s for {cases} cases "
              f"(latency {latency:g} s, at most {stats(url)['max_active']} in flight)")  # fmt: skip
    startup = run(pytest_args(*PLUGINS), root, env=full_env).seconds
    return Scale(cases, latency, concurrency, times[1], times[concurrency], startup)


def print_scale(scale: Scale) -> None:
    print(f"ideal: ceil({scale.cases}/{scale.concurrency}) x {scale.latency:g} s + start-up "
          f"{scale.startup:.2f} s = {scale.ideal:.2f} s")  # fmt: skip
    print(ratio_line("speed-up concurrency vs serial", scale.speedup, ">= 12",
                     scale.speedup >= 12))  # fmt: skip
    print(ratio_line("concurrent run / ideal", scale.over_ideal, "<= 1.3", scale.over_ideal <= 1.3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    env = dict(ENV)
    with workdir(args.keep) as root:
        with fake_server(args.latency) as url:
            scale = measure_scale(root, url, args.cases, args.latency, args.concurrency)
        print_scale(scale)
        with fake_server(args.latency, "--max-inflight", "8") as url:
            env["IMAGEGEN_BASE_URL"] = url
            write(root / "pytest.ini", "[pytest]\nimagegen_max_inflight = 8\n")
            for extra in ([f"--imagegen-concurrency={args.concurrency}"],
                          ["-n", "4", "--imagegen-concurrency=4"]):  # fmt: skip
                fresh(root)
                reset(url)
                out = run(pytest_args(*PLUGINS, "--imagegen-record-mode=once", *extra),
                          root, env=env, check=False)  # fmt: skip
                s = stats(url)
                failed = 0 if out.returncode == 0 else out.output.count(" FAILED") or 1
                print(f"limited to 8 in flight, {' '.join(extra)}: {out.seconds:.2f} s, "
                      f"429s {s['rejected_429']}, peak in flight {s['peak_inflight']}, "
                      f"failed cases {failed}")  # fmt: skip
                print(ratio_line("429s received (limited provider)", s["rejected_429"], "== 0",
                                 s["rejected_429"] == 0))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
