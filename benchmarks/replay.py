"""Replay speed: pytest-imagegen vs pytest-recording (vcrpy's default YAML), and the floor.

    python benchmarks/replay.py [--cases 100] [--size 1024x1024] [--rounds 3]

Records N cases with one photo-like image each from the fake server, once
with pytest-imagegen (a prompt suite: cassettes + image sidecars + baselines)
and once with pytest-recording (``@pytest.mark.vcr``; the base64 image sits
inside the YAML), then replays both offline with the same checks: the image
is decoded and compared by perceptual hash with its accepted baseline. The
floor is what any replay must do at least: read the image file, sha256 it and
phash it. Per-case times are wall times around each test (setup + call +
teardown; JUnit's are rounded to the millisecond), the median, best of
``--rounds`` runs. Targets (SPEC §11): ≥ 10x faster than pytest-recording,
≤ 3x the floor.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
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
    workdir,
    write,
)

RECORDING_TEST = """
import base64, io, json, os
from pathlib import Path

import httpx, imagehash, pytest
from PIL import Image

CASES = json.loads(Path(__file__).with_name("cases.json").read_text())
BASELINE = Path(__file__).with_name("baseline.json")
URL = os.environ.get("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")


@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["authorization"], "match_on": ["method", "path", "body"]}


@pytest.mark.vcr
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case):
    r = httpx.post(URL + "/images/generations", json=case["body"],
                   headers={"Authorization": "Bearer " + os.environ.get("IMAGEGEN_API_KEY", "x")},
                   timeout=60)
    data = base64.b64decode(r.json()["data"][0]["b64_json"])
    image = Image.open(io.BytesIO(data))
    image.verify()
    image = Image.open(io.BytesIO(data)).convert("RGB")
    hashes = {"phash": str(imagehash.phash(image)), "colorhash": str(imagehash.colorhash(image))}
    if os.environ.get("BENCH_ACCEPT"):
        (BASELINE.parent / "accepted").mkdir(exist_ok=True)
        (BASELINE.parent / "accepted" / (case["id"] + ".json")).write_text(json.dumps(hashes))
        return
    accepted = json.loads((BASELINE.parent / "accepted" / (case["id"] + ".json")).read_text())
    for name, value in hashes.items():
        distance = bin(int(value, 16) ^ int(accepted[name], 16)).count("1")
        assert distance <= (10 if name == "phash" else 4)
"""


def cases(n: int, size: str) -> list[dict[str, object]]:
    return [
        {
            "id": f"case-{i:04d}",
            "body": {
                "model": "gpt-image-2",
                "prompt": f"Benchmark landscape number {i}, golden hour, wide composition",
                "n": 1,
                "size": size,
                "quality": "low",
            },
        }
        for i in range(n)
    ]


def write_suite_project(ours: Path, items: list[dict[str, object]]) -> Path:
    """The pytest-imagegen side: one prompt suite with the cases (pipeline_overhead.py uses it)."""
    write(ours / "pytest.ini", "[pytest]\nimagegen_suites = prompt_suites\n")
    write(ours / "conftest.py", TIMER)
    lines = ["defaults: {model: gpt-image-2, quality: low, n: 1}", "cases:"]
    for c in items:
        body = c["body"]
        assert isinstance(body, dict)
        lines.append(
            f"  - {{id: {c['id']}, prompt: {json.dumps(body['prompt'])}, size: {body['size']}}}"
        )
    write(ours / "prompt_suites" / "bench.yaml", "\n".join(lines) + "\n")
    return ours


def write_projects(root: Path, items: list[dict[str, object]]) -> tuple[Path, Path]:
    ours = write_suite_project(root / "imagegen", items)
    theirs = root / "recording"
    write(theirs / "pytest.ini", "[pytest]\n")
    write(theirs / "conftest.py", TIMER)
    write(theirs / "test_bench.py", RECORDING_TEST)
    write(theirs / "cases.json", json.dumps(items))
    return ours, theirs


def per_case(times: dict[str, float]) -> float:
    return statistics.median(times.values())  # robust to the one-off lazy imports of test 1


def best_replay(project: Path, args: list[str], rounds: int) -> tuple[float, float]:
    """(per-case seconds, session seconds), best of ``rounds`` offline replays."""
    best_case, best_session = float("inf"), float("inf")
    for _ in range(rounds):
        result = run(
            pytest_args(*args),
            project,
            env={"IMAGEGEN_BASE_URL": "http://127.0.0.1:9/v1", "IMAGEGEN_API_KEY": ""},
        )
        best_case = min(best_case, per_case(protocol_times(project)))
        best_session = min(best_session, result.seconds)
    return best_case, best_session


def floor(images: list[Path], rounds: int) -> float:
    """Read + sha256 + phash (+ colorhash) of each image: the least a checked replay does."""
    import imagehash
    from PIL import Image

    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for path in images:
            data = path.read_bytes()
            hashlib.sha256(data).hexdigest()
            image = Image.open(io.BytesIO(data)).convert("RGB")
            imagehash.phash(image)
            imagehash.colorhash(image)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def disk_bytes(root: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(pattern) if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args(argv)

    items = cases(args.cases, args.size)
    with workdir(args.keep) as root:
        ours, theirs = write_projects(root, items)
        with fake_server() as url:
            env = {"IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY}
            t0 = time.perf_counter()
            run(pytest_args("prompt_suites", "--imagegen-record-mode=once"), ours, env=env)
            run(
                pytest_args("test_bench.py", "--record-mode=once"),
                theirs,
                env={**env, "BENCH_ACCEPT": "1"},
            )
            record_seconds = time.perf_counter() - t0
        ours_case, ours_session = best_replay(ours, ["prompt_suites"], args.rounds)
        theirs_case, theirs_session = best_replay(
            theirs, ["test_bench.py", "--record-mode=none"], args.rounds
        )
        images = sorted((ours / "prompt_suites" / "cassettes" / "images").glob("*.png"))
        floor_case = floor(images, args.rounds)

        raw = sum(p.stat().st_size for p in images)
        print(f"replay benchmark: {args.cases} cases, one {args.size} PNG each "
              f"({raw / len(images) / 1e6:.2f} MB average), best of {args.rounds} replays "
              f"(recorded both in {record_seconds:.1f} s)")  # fmt: skip
        print(f"{'':<28} {'per case':>10} {'session':>9} {'on disk':>10}")
        ours_disk = disk_bytes(ours / "prompt_suites" / "cassettes", "*")
        theirs_disk = disk_bytes(theirs / "cassettes", "*.yaml")
        print(
            f"{'pytest-imagegen':<28} {ours_case * 1e3:8.2f}ms {ours_session:8.2f}s {ours_disk / 1e6:8.1f}MB"
        )
        print(
            f"{'pytest-recording + vcrpy':<28} {theirs_case * 1e3:8.2f}ms {theirs_session:8.2f}s {theirs_disk / 1e6:8.1f}MB"
        )
        print(f"{'floor (read+sha256+phash)':<28} {floor_case * 1e3:8.2f}ms")
        speedup = theirs_case / ours_case
        over_floor = ours_case / floor_case
        print(
            ratio_line("speed-up vs pytest-recording (per case)", speedup, ">= 10", speedup >= 10)
        )
        print(ratio_line("pytest-imagegen / floor (per case)", over_floor, "<= 3", over_floor <= 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
