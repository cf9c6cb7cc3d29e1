"""Issue 12: every supported install, every broken file, other plugins, and a clean house."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from pytest_imagegen.cassettes.format import MARKER
from pytest_imagegen.cassettes.persister import Persister, open_cassette
from pytest_imagegen.cassettes.store import ImageStore
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import write_suite

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "pytest_imagegen"
ONCE = "--imagegen-record-mode=once"
ALL = "--imagegen-record-mode=all"
SUITE = """
    defaults: {size: 256x256, quality: low}
    cases:
      - id: kite
        prompt: "A red kite over the dunes"
"""
RAW_ERRORS = re.compile(r"\b(ValueError|TypeError|KeyError|binascii|Traceback|AttributeError)\b")


def write_test(pytester: pytest.Pytester, source: str, name: str = "test_images") -> None:
    pytester.makepyfile(**{name: textwrap.dedent(source)})


# ------------------------------------------------------------ supported installs


def test_persister_works_where_use_cassette_ignores_it(
    tmp_path: Path, fake_server: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vcrpy < 9.1 (all there is on Python 3.10) ignores use_cassette(persister=...)."""
    import vcr.config

    merged = vcr.config.VCR.get_merged_config

    def old_vcrpy(self: object, **kwargs: object) -> object:
        kwargs.pop("persister", None)
        return merged(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vcr.config.VCR, "get_merged_config", old_vcrpy)
    images = ImageStore(tmp_path / "cassettes" / "images")
    persister = Persister(images, ["sk-the-canary-key"], fix="x", fresh=True)
    path = tmp_path / "cassettes" / "s" / "c.yaml"
    body = {"model": "gpt-image-2", "prompt": "q", "size": "256x256", "quality": "low"}
    with open_cassette(path, persister, record=True), httpx.Client() as client:
        client.post(
            fake_server.url + "/images/generations",
            json=body,
            headers={"Authorization": "Bearer k"},
        )
    assert persister.saved
    text = path.read_text()
    assert MARKER in text and "b64_json: " not in text and '"b64_json": "iVBOR' not in text


def _requirements() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.findall(r"^(?:dependencies|test|ocr|docs) = \[(.*?)^\]", text, re.S | re.M)
    return [m for b in block for m in re.findall(r'^\s*"([^"]+)"', b, re.M)]


def test_oldest_constraints_pin_every_floor() -> None:
    """The `oldest` nox session installs exactly the floors pyproject.toml promises."""
    pins = {}
    for line in (ROOT / "constraints/oldest.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    floors = {}
    for requirement in _requirements():
        m = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        if m:
            floors[m.group(1).lower()] = m.group(2)
    for name, floor in floors.items():
        if name in ("ruff", "mypy", "import-linter"):
            continue  # tools, not APIs the tests exercise
        assert pins.get(name) is not None, f"{name} has no pin in constraints/oldest.txt"
        assert tuple(map(int, pins[name].split("."))) == tuple(map(int, floor.split("."))) + (
            0,
        ) * (len(pins[name].split(".")) - len(floor.split("."))), (name, floor, pins[name])
    assert any(r.startswith("openai>=") and "<" in r for r in _requirements())  # bounded


def test_ocr_extra_installs_on_every_python_and_both_ends_run_it() -> None:
    """`[ocr]` is rapidocr 3 on onnxruntime with no Python marker, and `nox -s oldest newest`
    install it (and `[docs]`), so the OCR tests and the strict docs build run (none skipped)
    at both ends of the matrix."""
    text = (ROOT / "pyproject.toml").read_text()
    (block,) = re.findall(r"^ocr = \[(.*?)^\]", text, re.S | re.M)
    requirements = re.findall(r'^\s*"([^"]+)"', block, re.M)
    assert sorted(r.split(">=")[0] for r in requirements) == ["onnxruntime", "rapidocr"]
    assert all(";" not in r for r in requirements)  # no python_version marker
    assert any(re.fullmatch(r"rapidocr>=3\.\d+(\.\d+)?", r) for r in requirements)
    noxfile = (ROOT / "noxfile.py").read_text()
    for session in ("oldest", "newest"):
        body = noxfile.split(f"def {session}(", 1)[1].split("\n\n\n", 1)[0]
        assert '".[test,ocr,docs]"' in body, session


def test_browser_test_skips_without_chromium_unless_on_ci(tmp_path: Path) -> None:
    bare = {k: v for k, v in os.environ.items() if k not in ("CI",)}
    bare["PATH"] = str(Path(sys.executable).parent)  # no chromium, no chromedriver
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
               "tests/test_html.py::test_review_page_in_a_real_browser"]  # fmt: skip
    local = subprocess.run(command, cwd=ROOT, env=bare, capture_output=True, text=True)
    assert local.returncode == 0, local.stdout
    assert "SKIPPED" in local.stdout and "apt-get install chromium chromium-driver" in local.stdout
    ci = subprocess.run(
        command, cwd=ROOT, env={**bare, "CI": "true"}, capture_output=True, text=True
    )
    assert ci.returncode == 1 and "failed" in ci.stdout


# -------------------------------------------------------- ids and file names


@pytest.mark.parametrize(
    "cases",
    [
        '  - {id: a, prompt: "one"}\n  - {id: _a, prompt: "two"}\n',
        '  - id: cat\n    matrix: {prompt: ["A cat!", "A cat?"]}\n',
    ],
    ids=["a/_a", "matrix-prompts"],
)
def test_ids_meeting_on_one_cassette_are_a_collection_error(
    project: pytest.Pytester, live_env: FakeImagesServer, cases: str
) -> None:
    write_suite(project, "s", "defaults: {size: 256x256, quality: low}\ncases:\n" + cases)
    result = project.runpytest(ONCE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*would be stored in the same cassette file as case*rename one*"])
    assert live_env.requests == 0


def test_ids_that_are_no_file_names_are_stored_and_paid_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    long_id = "x" * 300
    write_suite(
        project,
        "s",
        f"""
        defaults: {{size: 256x256, quality: low}}
        cases:
          - {{id: ".", prompt: "dot"}}
          - {{id: "..", prompt: "dots"}}
          - {{id: _, prompt: "one"}}
          - {{id: ___, prompt: "three"}}
          - {{id: {long_id}, prompt: "long"}}
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=5)
    assert live_env.requests == 5
    for mode in ("--imagegen-record-mode=new_episodes", "--imagegen-record-mode=none"):
        project.runpytest(mode).assert_outcomes(passed=5)
    assert live_env.requests == 5  # nothing stale, nothing paid twice
    names = [p.name for p in (project.path / "prompt_suites/cassettes/s").iterdir()]
    assert len(names) == 5 and all(len(n) < 200 for n in names)


def test_suite_files_sharing_a_stem_are_an_error(project: pytest.Pytester) -> None:
    write_suite(project, "s", SUITE)
    (project.path / "prompt_suites/s.yml").write_text(textwrap.dedent(SUITE))
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*shares its cassette folder cassettes/s/*rename one*"])


def test_marked_tests_meeting_on_one_cassette_fail_clearly(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(
        project,
        """
        import pytest

        @pytest.mark.parametrize("word", ["a!", "a?"])
        def test_logo(imagegen, word):
            imagegen.generate("logo " + word, size="256x256", quality="low")
        """,
    )
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*would use the same cassette file*imagegen(cassette=...)*"])
    assert live_env.requests == 0


def test_yaml_alias_bomb_is_refused_at_collection(project: pytest.Pytester) -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    params = "\n".join(f"      {line}" for line in levels)
    write_suite(project, "s", f"cases:\n  - id: x\n    prompt: p\n    params:\n{params}\n")
    result = project.runpytest("--imagegen-report=r.json", "-p", "no:faulthandler")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*s.yaml:1: the file expands to more than 200,000 values*"])


# --------------------------------------------------------------- damaged files


@pytest.fixture
def recorded(project: pytest.Pytester, live_env: FakeImagesServer) -> pytest.Pytester:
    write_suite(project, "s", SUITE)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    live_env.reset()
    return project


def _cassette(project: pytest.Pytester) -> Path:
    return project.path / "prompt_suites/cassettes/s/kite.yaml"


def test_truncated_cassettes_are_damaged_not_tracebacks(recorded: pytest.Pytester) -> None:
    path = _cassette(recorded)
    text = path.read_text()
    header = text.split("\n", 1)[0] + "\n"  # keep it fresh, so replay reads it
    for cut in (0.15, 0.3, 0.5, 0.7, 0.9):
        path.write_text(header + text[len(header) : int(len(text) * cut)])
        result = recorded.runpytest()
        result.assert_outcomes(failed=1)
        out = result.stdout.str()
        assert "kite.yaml is damaged" in out and "re-record it with" in out, (cut, out)
        assert not RAW_ERRORS.search(out), (cut, out)


@pytest.mark.parametrize(
    "old, new",
    [
        ("recorded_at: ", "recorded_at: !!timestamp 2026-99-99\n  note: "),
        ("imagegen-sha256:", "imagegen-sha256:../../"),
        ("code: 200", "code: two-hundred"),
        ("interactions:", "interactions: [1]\nignored:"),
    ],
    ids=["bad-timestamp", "dotdot-reference", "status-not-a-number", "interactions-not-dicts"],
)
def test_corrupted_cassette_fields_are_damaged(
    recorded: pytest.Pytester, old: str, new: str
) -> None:
    path = _cassette(recorded)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(r"kite\.yaml (is damaged|is missing)|image file .* is missing", out), out
    assert "re-record it with" in out and not RAW_ERRORS.search(out), out


@pytest.mark.parametrize(
    "images",
    [[1], [{}], [{"sha256": "0" * 64, "ext": "png", "hashes": {"phash": "zz"}}]],
    ids=["number", "empty-entry", "bad-hash"],
)
def test_corrupted_baseline_entries_are_damaged(
    recorded: pytest.Pytester, images: list[object]
) -> None:
    path = recorded.path / "prompt_suites/baselines/s.json"
    data = json.loads(path.read_text())
    data["cases"]["kite"]["images"] = images
    path.write_text(json.dumps(data))
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*baseline file prompt_suites/baselines/s.json is damaged: case 'kite'*"]
    )
    assert not RAW_ERRORS.search(result.stdout.str())
    recorded.runpytest("--imagegen-update-baselines").assert_outcomes(passed=1)
    recorded.runpytest().assert_outcomes(passed=1)  # re-accepting repairs it


def test_corrupt_sidecar_of_the_same_size_is_replaced_by_rerecording(
    recorded: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    (sidecar,) = (recorded.path / "prompt_suites/cassettes/images").iterdir()
    data = bytearray(sidecar.read_bytes())
    data[-20] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    recorded.runpytest().assert_outcomes(failed=1)
    recorded.runpytest(ALL).assert_outcomes(passed=1)
    recorded.runpytest().assert_outcomes(passed=1)  # fixed for good
    assert live_env.requests == 1


def test_image_store_replaces_a_corrupt_file_of_the_same_size(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "cassettes" / "images")
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    ref = store.put(data)
    path = store.directory / ref
    path.write_bytes(data[:-1] + b"\x00")  # same size, other bytes
    assert store.put(data) == ref
    assert path.read_bytes() == data


def test_undecodable_image_in_a_200_says_so(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE)
    junk = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"broken" * 50).decode()
    live_env.inject({"raw": json.dumps({"data": [{"b64_json": junk}]})})
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*image 1: *cannot be decoded*the API answered 200 with an image that does not decode*"
         "re-record it with `pytest --imagegen-record-mode=all prompt_suites/s.yaml::kite`*"]
    )  # fmt: skip


@pytest.mark.parametrize(
    "option", ["--imagegen-report=/proc/nope/r.json", "--imagegen-markdown=/proc/nope/r.md",
               "--imagegen-html=/proc/nope"],
)  # fmt: skip
def test_unwritable_report_paths_are_usage_errors(project: pytest.Pytester, option: str) -> None:
    write_suite(project, "s", SUITE)
    result = project.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option.split('=')[0]}: cannot write to /proc/nope*"])


@pytest.mark.parametrize(
    "size, message",
    [
        ("0x0", "YAML read this as the number 0 (0x… is a hexadecimal number in YAML*"),
        ("1024", "YAML read this as the number 1024*write WxH*"),
        (
            "99999x99999",
            "99999x99999 cannot be used with gpt-image-2: too large: at most 3840x2160*",
        ),
        ("100x100", "*too small*"),
    ],
)
def test_size_messages_say_what_is_wrong(project: pytest.Pytester, size: str, message: str) -> None:
    write_suite(project, "s", f'cases:\n  - {{id: a, prompt: "p", size: {size}}}\n')
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*field 'size': {message}"])


# ---------------------------------------------------------- other plugins


def test_reruns_replace_the_earlier_result(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    pytest.importorskip("pytest_rerunfailures")
    write_suite(project, "s", SUITE + '      - {id: boat, prompt: "A boat"}\n')
    live_env.inject({"status": 500, "count": 4})  # the first case fails once, after retries
    project.makeini("[pytest]\nimagegen_backoff = 0.01\n")
    result = project.runpytest(ONCE, "--reruns", "1", "--imagegen-report=r.json")
    assert result.parseoutcomes() == {"passed": 2, "rerun": 1}
    report = json.loads((project.path / "r.json").read_text())
    assert [c["nodeid"] for c in report["cases"]] == [
        "prompt_suites/s.yaml::boat",
        "prompt_suites/s.yaml::kite",
    ]
    assert report["summary"]["cases"] == 2
    result.stdout.fnmatch_lines(["cases: 2  *"])


def test_pytest_recording_and_imagegen_cassettes_coexist(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    pytest.importorskip("pytest_recording")
    write_test(
        project,
        """
        import os, httpx, pytest

        def post():
            return httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
                json={"model": "gpt-image-2", "prompt": "A kite", "size": "256x256",
                      "quality": "low"},
                headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"]})

        @pytest.mark.vcr
        @pytest.mark.imagegen
        def test_both():
            assert post().status_code == 200

        @pytest.mark.vcr
        def test_vcr_only():
            assert post().status_code == 200
        """,
    )
    result = project.runpytest(ONCE, "--record-mode=once", "--imagegen-block-network")
    result.assert_outcomes(passed=2)
    ours = project.path / "cassettes/test_images/test_both.imagegen.yaml"
    theirs = project.path / "cassettes/test_images/test_vcr_only.yaml"
    assert ours.is_file() and theirs.is_file()
    requests = live_env.requests
    result = project.runpytest("--record-mode=rewrite", "--imagegen-block-network")
    result.assert_outcomes(passed=2)
    assert ours.is_file()  # pytest-recording's rewrite left the paid-for cassette alone
    assert live_env.requests == requests + 1  # only pytest-recording's own test went out
    project.runpytest("--record-mode=none").assert_outcomes(passed=2)
    assert live_env.requests == requests + 1


def test_old_marked_cassette_names_are_moved_not_paid_again(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(
        project,
        """
        def test_logo(imagegen):
            imagegen.generate("A logo", size="256x256", quality="low")
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    new = project.path / "cassettes/test_images/test_logo.imagegen.yaml"
    old = new.with_name("test_logo.yaml")
    new.rename(old)  # as written before this release
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["moved imagegen cassette *test_logo.yaml to *test_logo.imagegen.yaml*"]
    )
    assert new.is_file() and not old.exists() and live_env.requests == 1


# ------------------------------------------------------------------ reports


def test_stale_revised_prompts_quoted_commands_and_prompt_changes(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - {id: poster, prompt: "A poster", model: dall-e-3, size: 1024x1024, quality: standard}
          - id: icon
            prompt: "An icon"
            size: 256x256
            matrix: {quality: [low]}
        """,
    )
    result = project.runpytest()
    quoted = "`pytest --imagegen-record-mode=once 'prompt_suites/s.yaml::icon[quality=low]'`"
    assert quoted in result.stdout.str()  # works in zsh, where [ ] would glob
    args = ("--imagegen-report=r.json", "--imagegen-markdown=r.md", "--imagegen-html=html")
    project.runpytest(ONCE, *args).assert_outcomes(passed=2)
    (poster,) = [
        c
        for c in json.loads((project.path / "r.json").read_text())["cases"]
        if "poster" in c["nodeid"]
    ]
    assert poster["revised_prompts"] == ["A poster"]
    assert "### Revised prompts" in (project.path / "r.md").read_text()
    assert "revised by the API: A poster" in (project.path / "html/index.html").read_text()
    suite = project.path / "prompt_suites/s.yaml"
    suite.write_text(suite.read_text().replace('"An icon"', '"An icon, flat"'))
    result = project.runpytest()
    result.stdout.fnmatch_lines(["cases: 2  *no cassette: 0  stale: 1"])
    live_env.seed = 99  # the model changed its look, and so did the prompt
    project.runpytest("--imagegen-record-mode=new_episodes").stdout.fnmatch_lines(
        ["*the baseline was accepted for another prompt*"]
    )


# -------------------------------------------------------------------- house


def test_the_house_layering_is_declared_and_kept() -> None:
    """SPEC §1: subpackages by concern, the layering an import-linter contract (``lint-imports``
    in CI fails on a wrong import), plugin.py glue only, no module over ~500 lines."""
    config = (ROOT / "pyproject.toml").read_text()
    assert "[tool.importlinter]" in config and 'type = "layers"' in config
    for package in ("pyapi", "suites", "review", "checks", "cassettes", "money", "api"):
        assert (PACKAGE / package / "__init__.py").is_file(), package
        assert f"pytest_imagegen.{package}" in config or f"{package}" in config
    assert len((PACKAGE / "plugin.py").read_text().splitlines()) < 250
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 520
    }
    assert long == {}, f"modules over ~500 lines: {long}"
    sources = "".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert sources.count('!= "prompt"') == 1  # the body without the prompt, built once
    linter = shutil.which("lint-imports")
    if linter is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    checked = subprocess.run([linter], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout[-3000:]
