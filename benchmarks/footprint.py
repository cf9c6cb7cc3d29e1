"""Footprint: bytes on disk of cassettes + image sidecars vs the raw image bytes.

    python benchmarks/footprint.py [--cases 20] [--size 1024x1024]

Records N cases from the fake server twice: all pictures different, then
every picture asked for twice (two cases per prompt: duplicates). Prints
(cassette YAML + images) / raw bytes of the images the API returned.
Target (SPEC §11): ≤ 1.02x without duplicates; identical images stored once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import KEY, fake_server, pytest_args, ratio_line, run, workdir, write


def suite(n: int, size: str, duplicates: bool) -> str:
    lines = [f"defaults: {{model: gpt-image-2, quality: low, size: {size}}}", "cases:"]
    for i in range(n):
        prompt = f"Footprint picture {i // 2 if duplicates else i}, misty valley"
        lines.append(f"  - {{id: c{i:03d}, prompt: {json.dumps(prompt)}}}")
    return "\n".join(lines) + "\n"


def measure(root: Path, url: str, n: int, size: str, duplicates: bool) -> tuple[int, int, int]:
    project = root / ("duplicates" if duplicates else "unique")
    write(project / "pytest.ini", "[pytest]\n")
    write(project / "prompt_suites" / "s.yaml", suite(n, size, duplicates))
    env = {"IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY}
    run(pytest_args("prompt_suites", "--imagegen-record-mode=once"), project, env=env)
    cassettes = project / "prompt_suites" / "cassettes"
    images = list((cassettes / "images").iterdir())
    yaml_bytes = sum(p.stat().st_size for p in cassettes.rglob("*.yaml"))
    image_bytes = sum(p.stat().st_size for p in images)
    # raw bytes the API returned: every case's image, duplicates counted each time
    per_prompt = image_bytes / len(images)
    raw = round(per_prompt * n)
    return yaml_bytes + image_bytes, raw, len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    with workdir(args.keep) as root, fake_server() as url:
        print(f"footprint benchmark: {args.cases} cases, one {args.size} PNG each")
        for duplicates in (False, True):
            disk, raw, stored = measure(root, url, args.cases, args.size, duplicates)
            label = "every picture twice" if duplicates else "all pictures different"
            print(f"{label:<24} on disk {disk / 1e6:8.2f} MB  raw images {raw / 1e6:8.2f} MB  "
                  f"image files {stored}")  # fmt: skip
            ratio = disk / raw
            if duplicates:
                print(
                    ratio_line(
                        "on disk / raw (duplicates stored once)", ratio, "<= 0.51", ratio <= 0.51
                    )
                )
            else:
                print(ratio_line("on disk / raw", ratio, "<= 1.02", ratio <= 1.02))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
