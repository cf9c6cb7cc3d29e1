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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import KEY, fake_server, pytest_args, ratio_line, reset, run, stats, workdir, write


def fresh(root: Path) -> None:
    for name in ("cassettes", "baselines"):
        shutil.rmtree(root / "prompt_suites" / name, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    lines = ["defaults: {model: gpt-image-2, quality: low, size: 256x256}", "cases:"]
    lines += [f'  - {{id: c{i:03d}, prompt: "Scale picture {i}"}}' for i in range(args.cases)]
    env = {"IMAGEGEN_API_KEY": KEY, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plugins = ["-p", "pytest_imagegen.plugin", "-p", "xdist.plugin", "prompt_suites"]
    with workdir(args.keep) as root:
        write(root / "prompt_suites" / "s.yaml", "\n".join(lines) + "\n")
        with fake_server(args.latency) as url:
            env["IMAGEGEN_BASE_URL"] = url
            write(root / "pytest.ini", "[pytest]\n")
            times = {}
            for n in (1, args.concurrency):
                fresh(root)
                reset(url)
                out = run(pytest_args(*plugins, "--imagegen-record-mode=once",
                                      f"--imagegen-concurrency={n}"), root, env=env)  # fmt: skip
                times[n] = out.seconds
                print(f"concurrency {n:>2}: {out.seconds:7.2f} s for {args.cases} cases "
                      f"(latency {args.latency:g} s, at most {stats(url)['max_active']} in flight)")  # fmt: skip
            startup = run(pytest_args(*plugins), root, env=env).seconds  # replay: no requests
        ideal = math.ceil(args.cases / args.concurrency) * args.latency + startup
        speedup = times[1] / times[args.concurrency]
        print(f"ideal: ceil({args.cases}/{args.concurrency}) x {args.latency:g} s + start-up "
              f"{startup:.2f} s = {ideal:.2f} s")  # fmt: skip
        print(ratio_line("speed-up concurrency vs serial", speedup, ">= 12", speedup >= 12))
        over = times[args.concurrency] / ideal
        print(ratio_line("concurrent run / ideal", over, "<= 1.3", over <= 1.3))
        with fake_server(args.latency, "--max-inflight", "8") as url:
            env["IMAGEGEN_BASE_URL"] = url
            write(root / "pytest.ini", "[pytest]\nimagegen_max_inflight = 8\n")
            for extra in ([f"--imagegen-concurrency={args.concurrency}"],
                          ["-n", "4", "--imagegen-concurrency=4"]):  # fmt: skip
                fresh(root)
                reset(url)
                out = run(pytest_args(*plugins, "--imagegen-record-mode=once", *extra),
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
