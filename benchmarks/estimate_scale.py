"""--imagegen-estimate at scale vs bare pytest collection of the same suite files.

    python benchmarks/estimate_scale.py [--sizes 1000 10000] [--files 100]

Writes N cases in ``--files`` suite files (a tenth of them with a fresh
cassette, so the freshness check is exercised), then times
``pytest --collect-only -q`` and ``pytest --imagegen-estimate -q`` on them
(best of ``--rounds``) and reads each run's peak RSS. Targets (SPEC §11):
estimate ≤ 1.5x collection; memory flat per case.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import pytest_args, ratio_line, run, workdir, write

from pytest_imagegen.cassettes.format import fingerprint
from pytest_imagegen.cassettes.paths import suite_cassette_path


def write_suites(root: Path, cases: int, files: int) -> None:
    per_file = cases // files
    write(root / "pytest.ini", "[pytest]\n")
    for f in range(files):
        lines = [
            "category: scale",
            "defaults: {model: gpt-image-2, quality: low, size: 1024x1024}",
            "cases:",
        ]
        path = root / "prompt_suites" / f"suite_{f:03d}.yaml"
        for i in range(per_file):
            prompt = f"Scale prompt {f}-{i}: a lighthouse on a cliff at dusk, photo"
            lines.append(f'  - id: case-{i:04d}\n    prompt: "{prompt}"\n    tags: [scale]')
            if i % 10 == 0:  # a fresh cassette for one case in ten (only its first line matters)
                body = {
                    "model": "gpt-image-2",
                    "prompt": prompt,
                    "n": 1,
                    "size": "1024x1024",
                    "quality": "low",
                }
                write(
                    suite_cassette_path(path, f"case-{i:04d}"),
                    f"# pytest-imagegen cassette; request sha256={fingerprint(body)}\n",
                )
        write(path, "\n".join(lines) + "\n")


def best(root: Path, args: list[str], rounds: int) -> tuple[float, int, str]:
    runs = [run(pytest_args(*args), root) for _ in range(rounds)]
    fastest = min(runs, key=lambda r: r.seconds)
    return fastest.seconds, max(r.max_rss_kb for r in runs), fastest.output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    print(f"estimate benchmark: suites in {args.files} files, best of {args.rounds} runs")
    print(f"{'cases':>7} {'collect':>9} {'estimate':>9} {'ratio':>6} {'RSS collect':>12} "
          f"{'RSS estimate':>13} {'KB/case':>8}")  # fmt: skip
    ratios = []
    rss: list[tuple[int, int]] = []
    for size in args.sizes:
        with workdir(f"{args.keep}/{size}" if args.keep else None) as root:
            write_suites(root, size, args.files)
            collect, rss_c, _ = best(root, ["--collect-only", "prompt_suites"], args.rounds)
            est, rss_e, output = best(root, ["--imagegen-estimate", "prompt_suites"], args.rounds)
            assert f"cases: {size}" in output, output[-2000:]
            ratio = est / collect
            ratios.append(ratio)
            rss.append((size, rss_e))
            print(f"{size:>7} {collect:8.2f}s {est:8.2f}s {ratio:6.2f} {rss_c / 1024:10.1f}MB "
                  f"{rss_e / 1024:11.1f}MB {rss_e / size:8.1f}")  # fmt: skip
    worst = max(ratios)
    print(ratio_line("estimate / collection (worst size)", worst, "<= 1.5", worst <= 1.5))
    if len(args.sizes) > 1:
        (lo, rss_lo), (hi, rss_hi) = rss[0], rss[-1]
        marginal = (rss_hi - rss_lo) / (hi - lo)
        print(f"estimate memory per extra case from {lo} to {hi} cases: {marginal:.1f} KB "
              "(the pytest items themselves; linear, no per-case file contents kept)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
