"""The documentation: README.md as the front page, docs/ as the MkDocs reference.

The README's Quick start and its tour are run as written: the tour's files and
commands come from the README's code blocks marked ``<!-- tour: NAME -->``, and
the CI workflow's pytest commands from docs/ci.md.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_imagegen.fakeserver import FakeImagesServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
OPTIONS_PY = ROOT / "pytest_imagegen" / "options.py"

QUICK_START = (
    "pip install -e . && pytest prompt_suites",
    "pip install -e '.[test,ocr]' && pytest -n 2",
)
VENV = "python -m venv .venv && . .venv/bin/activate"
KEY_VARS = ("IMAGEGEN_API_KEY", "WISGATE_API_KEY", "OPENAI_API_KEY")
DEAD_URL = "http://127.0.0.1:9/v1"


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _without_code(text: str) -> str:
    """Markdown text with fenced code blocks and inline code removed."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _declared() -> tuple[set[str], set[str]]:
    """The plugin's command-line options and ini keys, from options.py."""
    source = OPTIONS_PY.read_text(encoding="utf-8")
    options = set(re.findall(r'"(--imagegen-[a-z-]+)"', source))
    ini_keys = set(re.findall(r'parser\.addini\(\s*"(imagegen_[a-z_]+)"', source))
    assert len(options) >= 15 and len(ini_keys) >= 15, "options.py changed shape: fix the regex"
    return options, ini_keys


def tour_blocks() -> dict[str, str]:
    """The README's code blocks marked ``<!-- tour: NAME -->``, by name."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- tour: (\S+) -->\n```[a-z]*\n(.*?)\n```", text, flags=re.DOTALL)
    found = dict(blocks)
    assert len(found) == len(blocks), "two tour blocks share a name"
    return found


# ---------------------------------------------------------------- the reference


def test_options_page_lists_every_option_and_ini_key() -> None:
    options, ini_keys = _declared()
    page = (DOCS / "options.md").read_text(encoding="utf-8")
    for option in sorted(options):
        assert f"| `{option}" in page, f"{option} has no row in docs/options.md"
    for key in sorted(ini_keys):
        assert f"| `{key}` |" in page, f"ini key {key} has no row in docs/options.md"


def test_docs_name_only_options_and_ini_keys_that_exist() -> None:
    options, ini_keys = _declared()
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        named = set(re.findall(r"--imagegen-[a-z-]*[a-z]", text))
        assert named <= options, f"{page.name} names unknown options {sorted(named - options)}"
        keys = set(re.findall(r"\bimagegen_[a-z_]*[a-z]", text))
        assert keys <= ini_keys, f"{page.name} names unknown ini keys {sorted(keys - ini_keys)}"


def test_relative_links_point_to_existing_files() -> None:
    for page in _pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text("utf-8"))):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor of the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)}: broken link {target!r}"


def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    missing = [m for m in ("mkdocs", "material") if importlib.util.find_spec(m) is None]
    if missing:
        why = f"needs {' and '.join(missing)}: pip install -e '.[docs]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)  # CI must build the site
        pytest.skip(why)
    # Not -q: mkdocs then drops the warnings before strict mode counts them.
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in output, output
    assert (tmp_path / "site" / "options" / "index.html").is_file()


def test_benchmarks_page_carries_the_latest_table() -> None:
    source = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    rows = [line for line in source.splitlines() if line.startswith("| ")]
    assert rows and all(row in page for row in rows), "copy the table of benchmarks/README.md"


# ------------------------------------------------------------ the front page


def test_readme_is_a_front_page_with_the_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference to docs/"
    for command in (VENV, *QUICK_START):
        assert command in lines, f"Quick start command missing verbatim: {command}"
    assert lines.index(VENV) < lines.index(QUICK_START[0]) < lines.index(QUICK_START[1])
    assert "virtualenv" in text
    assert "docs/options.md" in text and "docs/index.md" in text


def test_quick_start_command_2_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, run = (part.strip() for part in QUICK_START[1].split("&&"))
    # CI installs the docs extra on top, to build the site
    assert re.search(r"pip install (-q )?-e '\.\[test,ocr(,docs)?\]'", ci), install
    assert re.search(r"^(NO_MKDOCS_2_WARNING=1 )?python -m mkdocs build --strict", ci, re.M)
    assert re.search(rf"^(python -m )?{re.escape(run)}$", ci, flags=re.MULTILINE), run


def test_quick_start_command_1_replays_the_examples_for_free() -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in KEY_VARS
        and not name.startswith(("PYTEST_", "IMAGEGEN_"))
        and name != "GITHUB_STEP_SUMMARY"
    }
    env["IMAGEGEN_BASE_URL"] = DEAD_URL  # a closed local port: nothing can be sent anywhere
    before = sorted((ROOT / "prompt_suites").rglob("*"))
    command = QUICK_START[0].split("&&")[1].split()  # pytest prompt_suites
    done = subprocess.run(
        [sys.executable, "-m", *command, "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "spent: $0.0000" in done.stdout and "recorded: 0  live: 0" in done.stdout
    summary = re.search(r"```\n(-+ imagegen -+\n.*?)\n```", README.read_text("utf-8"), re.DOTALL)
    assert summary, "the README shows the summary of command 1"
    for line in summary.group(1).splitlines():
        assert line in done.stdout, f"the README's summary is out of date: {line!r}"
    assert sorted((ROOT / "prompt_suites").rglob("*")) == before  # replay writes nothing


# ------------------------------------------------------------------ the tour


def _run_block(pytester: pytest.Pytester, name: str, blocks: dict[str, str]) -> list[str]:
    """Run one tour block of shell commands; a command whose comment says it ``fails``
    must exit 1, every other one 0. Returns each pytest run's output."""
    outputs = []
    for raw in blocks[name].splitlines():
        command, _, comment = raw.partition(" #")
        words = shlex.split(command)
        if not words or words[0] == "export":  # the test provides the key itself
            continue
        if words[:2] == ["rm", "-rf"]:
            for target in words[2:]:
                shutil.rmtree(pytester.path / target)
            continue
        assert words[0] == "pytest", f"tour block {name!r}: the test cannot run {raw!r}"
        result = pytester.runpytest(*words[1:], "-p", "no:randomly")
        output = result.stdout.str()
        expected = 1 if "fails" in comment else 0
        assert result.ret == expected, f"{raw!r} exited {result.ret}:\n{output}"
        outputs.append(output)
    return outputs


def _write_tour_files(pytester: pytest.Pytester, blocks: dict[str, str]) -> None:
    for name, text in blocks.items():
        if "." in name:  # a file name, not a block of commands
            path = pytester.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")


def test_the_tour_runs_as_written(
    pytester: pytest.Pytester, fake_server: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = tour_blocks()
    assert {"try", "record", "change", "pyproject.toml", ".gitignore"} <= set(blocks)
    _write_tour_files(pytester, blocks)
    suite = pytester.path / "prompt_suites" / "social.yaml"
    cassettes = pytester.path / "prompt_suites" / "cassettes"

    # 5. estimate and try it without a key (the environment has none)
    estimate, fake, replay = _run_block(pytester, "try", blocks)
    assert "nothing was sent" in estimate and "cassette: missing" in estimate
    assert "recorded: 2" in fake and "fake server" in fake
    assert "replayed: 2" in replay and "spent: $0.0000" in replay

    # 6. record "for real": the fake server fixture stands in for the provider
    monkeypatch.setenv("IMAGEGEN_BASE_URL", fake_server.url)
    monkeypatch.setenv("IMAGEGEN_API_KEY", "sk-tour-0123456789abcdef")
    estimate, record, replay = _run_block(pytester, "record", blocks)
    assert "nothing was sent" in estimate and fake_server.requests == 2
    assert "recorded: 2" in record and "baselines written" in record
    assert "replayed: 2" in replay and fake_server.requests == 2
    assert sorted(p.name for p in (cassettes / "social").iterdir()) == [
        "feed-post.yaml",
        "sale-banner.yaml",
    ]

    # 7. change a prompt as the README says, re-record, review and accept
    readme = README.read_text(encoding="utf-8")
    assert "change\n`heart` to `tulip` in `feed-post`" in readme
    suite.write_text(suite.read_text("utf-8").replace("heart", "tulip"), encoding="utf-8")
    stale, rerecord, accept = _run_block(pytester, "change", blocks)
    assert "stale cassette for prompt_suites/social.yaml::feed-post" in stale
    assert "visual drift" in rerecord and fake_server.requests == 3
    assert (pytester.path / "imagegen-review" / "index.html").is_file()
    assert "baselines written" in accept and fake_server.requests == 3
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)

    # 8. what to commit and what to ignore
    assert (pytester.path / "prompt_suites" / ".imagegen" / "ledger.jsonl").is_file()
    if shutil.which("git") is None:
        return

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=pytester.path, capture_output=True, text=True, check=True
        )
        return done.stdout

    git("init", "-q")
    git("add", "-A")
    tracked = git("ls-files").splitlines()
    assert not [p for p in tracked if ".imagegen/" in p or p.startswith("imagegen-review/")]
    image = next(p for p in tracked if p.startswith("prompt_suites/cassettes/images/"))
    for expected in (
        "prompt_suites/social.yaml",
        "prompt_suites/profiles.yaml",
        "prompt_suites/cassettes/social/feed-post.yaml",
        "prompt_suites/baselines/social.json",
    ):
        assert expected in tracked
    assert git("check-attr", "filter", "--", image).strip().endswith("filter: lfs")


def test_the_ci_workflow_commands_run(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/ci.md's pytest steps, in a project recorded as the tour shows."""
    _write_tour_files(pytester, tour_blocks())
    pytester.runpytest("--imagegen-fake-server", "--imagegen-record-mode=once").assert_outcomes(
        passed=2
    )
    page = (DOCS / "ci.md").read_text(encoding="utf-8")
    workflow = yaml.safe_load(re.search(r"```yaml\n(.*?)\n```", page, re.DOTALL).group(1))
    steps = workflow["jobs"]["replay"]["steps"]
    runs = {
        step.get("if"): shlex.split(step["run"])
        for step in steps
        if step.get("run", "").startswith("pytest")
    }
    assert set(runs) == {"github.event_name == 'push'", "github.event_name == 'pull_request'"}
    assert "pip install -e ." in [step.get("run") for step in steps]
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    main = pytester.runpytest(*runs["github.event_name == 'push'"][1:], "-p", "no:randomly")
    assert main.ret == 0, main.stdout.str()
    for name in ("imagegen-report.json", "imagegen-summary.md", "imagegen-review/index.html"):
        assert (pytester.path / name).is_file(), name
    assert "| cases | replayed |" in summary.read_text("utf-8")

    (pytester.path / "main-report").mkdir()  # what the download step unpacks
    shutil.copy(pytester.path / "imagegen-report.json", pytester.path / "main-report")
    pr = pytester.runpytest(*runs["github.event_name == 'pull_request'"][1:], "-p", "no:randomly")
    assert pr.ret == 0, pr.stdout.str()
    assert "spent: $0.0000" in pr.stdout.str()
