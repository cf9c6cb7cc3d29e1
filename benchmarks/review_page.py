"""Review page size and build time for the shipped suites (SPEC §17).

    python benchmarks/review_page.py [--suites prompt_suites/quality_checks.yaml ...]

Replays the shipped suites (prompt_suites/, $0, offline) in-process, then builds
the review page from their results into a fresh folder twice: cold (every
preview and difference image made) and warm (previews already there, as on a
second run into the same folder). Prints the page folder's bytes (HTML and
previews) ÷ the bytes of the full images it shows, and the build time per case.
Target: page ÷ images ≤ 0.10.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _common import ratio_line

ROOT = Path(__file__).resolve().parent.parent


class Grab:
    """Keeps the session's results (a plugin of the in-process run)."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_imagegen.session import get_state

        self.results = get_state(session.config).results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", nargs="*", default=["prompt_suites"])
    args = parser.parse_args()
    from pytest_imagegen.review import html
    from pytest_imagegen.review.previews import Previews, folder_bytes

    grab = Grab()
    with tempfile.TemporaryDirectory(prefix="imagegen-review-bench-") as tmp:
        code = pytest.main(
            ["-q", "-p", "no:cacheprovider", "--imagegen-right-size", "-p", "no:randomly",
             f"--rootdir={ROOT}", *args.suites],
            plugins=[grab],
        )  # fmt: skip
        if code not in (0, 1):
            print(f"the replay failed (exit {code})")
            return 1
        results = grab.results
        from pytest_imagegen.review.rightsize import groups

        page = html.PageContext(right_size=groups(results))
        folder = Path(tmp) / "review"
        start = time.perf_counter()
        html.write(folder, results, page=page)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        html.write(folder, results, page=page)
        warm = time.perf_counter() - start
        counting = Previews(Path(tmp) / "count")  # counts the full images the page shows
        html.render(results, counting, html.Links(Path(tmp) / "count"), page)
        shown = counting.image_bytes
        size = folder_bytes(folder)
        cases = max(1, len(results))
        print(f"cases: {len(results)}  full images shown: {shown / 1e6:.1f} MB")
        print(f"page folder (index.html + previews): {size / 1e6:.2f} MB")
        ratio = size / shown if shown else 0.0
        print(ratio_line("page / images (bytes)", ratio, "<= 0.10", ratio <= 0.10))
        print(
            f"build time per case: cold {1000 * cold / cases:.1f} ms, warm {1000 * warm / cases:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
