"""Smoke tests: every benchmark script runs with a tiny N and prints its ratios (so they cannot rot).

The real measurements are in benchmarks/README.md; timing is never asserted here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import needs_ocr, needs_s3, needs_xdist

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("replay.py", ["--cases", "3", "--size", "256x256", "--rounds", "1"],
         ["speed-up vs pytest-recording (per case)", "pytest-imagegen / floor (per case)"]),
        ("footprint.py", ["--cases", "4", "--size", "256x256"],
         ["on disk / raw ", "on disk / raw (duplicates stored once)"]),
        pytest.param("record_scale.py", ["--cases", "4", "--latency", "0.2", "--workers", "2"],
                     ["speed-up -n 2 vs -n 0 (wall time)"], marks=needs_xdist),
        pytest.param("quality_replay.py", ["--cases", "2", "--size", "256x256", "--rounds", "1"],
                     ["with checks / without (per case)"], marks=needs_ocr),
        pytest.param("concurrency_scale.py", ["--cases", "4", "--latency", "0.2", "--concurrency", "2"],
                     ["speed-up concurrency vs serial", "429s received (limited provider)"],
                     marks=needs_xdist),
        ("estimate_scale.py", ["--sizes", "20", "40", "--files", "2", "--rounds", "1"],
         ["estimate / collection (worst size)", "estimate memory per extra case"]),
        ("review_page.py", ["--suites", "prompt_suites/quality_checks.yaml"],
         ["page / images (bytes)", "build time per case"]),
        pytest.param("image_store.py", ["--cases", "2", "--rerecords", "1", "--size", "256x256",
                                        "--rounds", "1"],
                     ["with prune / one recording", "warm store cache / sidecars (per case)"],
                     marks=needs_s3),
        pytest.param("pipeline_overhead.py", ["--quick"],
                     ["replay / floor (per case)", "pipeline / bare httpx (per call)",
                      "speed-up concurrency vs serial", "concurrent run / ideal",
                      "seconds from Ctrl-C to exit", "requests sent / two rounds"],
                     marks=needs_xdist),
    ],
)  # fmt: skip
def test_benchmark_script_runs(script: str, args: list[str], expected: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=BENCHMARKS.parent,  # the shipped suites are named from the repository root
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in expected:
        assert line in proc.stdout, proc.stdout
    assert "target" in proc.stdout
