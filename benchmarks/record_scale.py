"""Recording at scale: -n 0 vs -n 4 against a fake server with 2 s latency.

    python benchmarks/record_scale.py [--cases 16] [--latency 2] [--workers 4]

Both runs record the same N cases from scratch with a session budget on
(``--imagegen-budget``), so the file-locked budget ledger is part of what is
measured: it must not serialise requests. Prints wall times and the
speed-up, and the most requests the server had in flight at once. Only
pytest-imagegen and pytest-xdist are loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD).
Target (SPEC §11): ≥ 3.5x. Then the same -n run without a budget: with one,
the first request of each setting is sent alone (SPEC §12), one round of
latency more.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import KEY, fake_server, pytest_args, ratio_line, reset, run, stats, workdir, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    lines = [f"defaults: {{model: gpt-image-2, quality: low, size: {args.size}}}", "cases:"]
    lines += [f'  - {{id: c{i:03d}, prompt: "Scale picture {i}"}}' for i in range(args.cases)]
    with workdir(args.keep) as root, fake_server(latency=args.latency) as url:
        write(root / "pytest.ini", "[pytest]\n")
        write(root / "prompt_suites" / "s.yaml", "\n".join(lines) + "\n")
        # clean room: only pytest-imagegen and pytest-xdist, so the start-up of unrelated
        # plugins installed on the machine (paid by every worker) does not skew the ratio
        env = {
            "IMAGEGEN_BASE_URL": url,
            "IMAGEGEN_API_KEY": KEY,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        common = [
            "-p", "pytest_imagegen.plugin", "-p", "xdist.plugin",
            "prompt_suites", "--imagegen-record-mode=once", "--imagegen-budget=100",
        ]  # fmt: skip
        times = {}
        for workers in (0, args.workers):
            shutil.rmtree(root / "prompt_suites" / "cassettes", ignore_errors=True)
            shutil.rmtree(root / "prompt_suites" / "baselines", ignore_errors=True)
            reset(url)
            result = run(pytest_args(*common, "-n", str(workers)), root, env=env)
            s = stats(url)
            assert s["requests"] == args.cases, s
            times[workers] = result.seconds
            print(f"-n {workers}: {result.seconds:6.2f} s for {args.cases} cases "
                  f"(latency {args.latency:g} s; at most {s['max_active']} requests in flight)")  # fmt: skip
        speedup = times[0] / times[args.workers]
        print(
            ratio_line(
                f"speed-up -n {args.workers} vs -n 0 (wall time)", speedup, ">= 3.5", speedup >= 3.5
            )
        )
        # With a budget, the first request of each setting is sent alone and its bill
        # calibrates the rest (SPEC §12): one round of latency that -n 0 does not lose.
        shutil.rmtree(root / "prompt_suites" / "cassettes", ignore_errors=True)
        shutil.rmtree(root / "prompt_suites" / "baselines", ignore_errors=True)
        reset(url)
        unbudgeted = [arg for arg in common if not arg.startswith("--imagegen-budget")]
        result = run(pytest_args(*unbudgeted, "-n", str(args.workers)), root, env=env)
        print(f"-n {args.workers} without a budget (no calibration round): {result.seconds:6.2f} s")
        name = f"speed-up -n {args.workers} without a budget vs -n 0"
        print(f"{name:<44} {times[0] / result.seconds:8.3f}   target none (reported)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
