"""Screenshots of the review page of the shipped suites, for docs/review.md.

    python docs/screenshots.py

Replays prompt_suites/ ($0, offline) into a review page, and a copy of it in
which a poster's headline changed (the OCR check fails) and a hero's prompt
changed (its cassette is stale): the states a product team meets. Drives headless Chromium (Debian's chromium and
chromedriver) and writes docs/images/review-*.png (palette PNGs, < 300 KB).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"


def replay(project: Path, page: Path, *more: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"--imagegen-html={page}", "--imagegen-right-size", "prompt_suites", *more],
        cwd=project, check=False, capture_output=True, timeout=600,
    )  # fmt: skip


def failing_copy(tmp: Path) -> Path:
    project = tmp / "project"
    shutil.copytree(ROOT / "prompt_suites", project / "prompt_suites")
    (project / "pytest.ini").write_text("[pytest]\nimagegen_suites = prompt_suites\n")
    quality = project / "prompt_suites/quality_checks.yaml"
    quality.write_text(
        quality.read_text().replace('text: "GRAND OPENING"', 'text: "GRAND CLOSING"')
    )
    campaign = project / "prompt_suites/campaign_visuals.yaml"
    text = campaign.read_text()
    campaign.write_text(text.replace("cheerful morning", "cheerful evening", 1))
    return project


def shoot(driver: object, name: str, element: object | None = None) -> None:
    from PIL import Image

    source: Any = driver if element is None else element
    png = source.get_screenshot_as_png() if element is None else source.screenshot_as_png
    with Image.open(io.BytesIO(png)) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        target = OUT / f"review-{name}.png"
        small.save(target, optimize=True)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imagegen-shots-") as name:
        tmp = Path(name)
        replay(ROOT, tmp / "shipped")
        project = failing_copy(tmp)
        replay(project, tmp / "failing")
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1000", "--hide-scrollbars"):  # fmt: skip
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get((tmp / "shipped/index.html").as_uri())
            driver.execute_script(
                "document.querySelectorAll('img').forEach(i => i.loading='eager')"
            )
            time.sleep(1)
            shoot(driver, "shipped")
            card = driver.find_element(
                By.CSS_SELECTOR,
                'section.case[data-nodeid="prompt_suites/quality_checks.yaml::paper-plane-icon"]',
            )
            driver.execute_script("document.querySelector('.toolbar').style.position='static'")
            driver.execute_script("arguments[0].scrollIntoView()", card)
            shoot(driver, "judged-case", card)
            driver.get((tmp / "failing/index.html").as_uri())
            driver.execute_script(
                "document.querySelectorAll('img').forEach(i => i.loading='eager')"
            )
            time.sleep(1)
            shoot(driver, "failures", driver.find_element(By.ID, "summary"))
            driver.execute_script("document.querySelector('.toolbar').style.position='static'")
            for state in ("stale", "quality"):
                card = driver.find_element(By.CSS_SELECTOR, f'section.case[data-states~="{state}"]')
                driver.execute_script("arguments[0].scrollIntoView()", card)
                time.sleep(0.3)
                shoot(driver, f"{state}-case", card)
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
