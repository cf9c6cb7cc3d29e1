"""Issue 20 (reproductions 13, 14, 17, 19, 23, 24): limits on what a suite, an input file,
a key, a ledger line and the test suite itself may do to a run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, write_suite

ROOT = Path(__file__).parent.parent
ONCE = "--imagegen-record-mode=once"
#: address space of a child pytest in the memory tests: a normal collection needs ~200 MB;
#: the old loader building 10**8 cases fails with MemoryError within seconds instead of
#: taking the whole machine
CHILD_MEMORY = 1 << 30


def run_capped(pytester: pytest.Pytester, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a child process whose memory is capped at :data:`CHILD_MEMORY`."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=pytester.path,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ------------------------------------------- 13. cases per suite file, linear checks


def _eight_by_ten() -> str:
    axes = "\n".join(f"      params.p{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" for i in range(8))
    return f'cases:\n  - id: x\n    prompt: "A kite"\n    matrix:\n{axes}\n'


@pytest.mark.parametrize("mode", ["--collect-only", "--imagegen-estimate"])
def test_a_matrix_of_a_hundred_million_cases_is_a_collection_error(
    pytester: pytest.Pytester, mode: str
) -> None:
    path = write_suite(pytester, "big", _eight_by_ten())
    assert path.stat().st_size < 450  # a short file asking for 10**8 cases
    proc = run_capped(pytester, mode, "-q")
    out = proc.stdout + proc.stderr
    assert "MemoryError" not in out and "Traceback" not in out, out[-3000:]
    assert (
        "prompt_suites/big.yaml:4: case 'x': field 'matrix': expands to 100,000,000 cases "
        "(10 x 10 x 10 x 10 x 10 x 10 x 10 x 10: one per combination of params.p0, "
    ) in out, out[-3000:]
    assert (
        "at most 10,000 cases per suite file: split the case or the file, or vary fewer fields"
    ) in out
    assert proc.returncode != 0 and "1 error" in out


def test_cases_of_a_file_add_up_to_the_limit(pytester: pytest.Pytester) -> None:
    values = "[" + ", ".join(f"v{i}" for i in range(100)) + "]"
    twenty = "[" + ", ".join(f"v{i}" for i in range(20)) + "]"
    write_suite(
        pytester,
        "s",
        f"""
        cases:
          - id: a
            prompt: "A kite"
            matrix: {{params.x: {values}, params.y: {twenty}}}
          - id: b
            prompt: "A boat"
            matrix: {{params.x: {values}, params.y: {values}}}
        """,
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*s.yaml:1: field 'cases': the file expands to 12,000 cases (the largest: 'b' 10,000, "
            "'a' 2,000); at most 10,000 cases per suite file: split the file, or vary fewer fields"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_matrix_that_repeats_a_value_names_the_id_once(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester,
        "s",
        """
        cases:
          - id: kite
            prompt: "A kite"
            size: 256x256
            matrix: {quality: [low, medium, low, low]}
        """,
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert out.count("'kite[quality=low]': field 'matrix': matrix expands to the same id") == 1


def test_a_file_of_ten_thousand_cases_is_accepted() -> None:
    from pytest_imagegen.money.prices import PriceTable
    from pytest_imagegen.suites.loader import load_suite

    values = "[" + ", ".join(f"v{i}" for i in range(100)) + "]"
    text = textwrap.dedent(
        f"""
        cases:
          - id: x
            prompt: p
            size: 256x256
            quality: low
            matrix: {{extra_params.a: {values}, extra_params.b: {values}}}
        """
    )
    suite = load_suite(ROOT / "s.yaml", PriceTable.load(None, 1.0), data=text.encode())
    assert len(suite.cases) == 10_000
    assert len({c.id for c in suite.cases}) == 10_000


# ------------------------------------- 14. edit inputs: regular files in the project


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` with almost no data behind it:
    Pillow refuses it from the header (a decompression bomb), before decoding a pixel."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def _small_png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(path)
    return path


def _edit_suite(pytester: pytest.Pytester, image: str, field: str = "image") -> None:
    write_suite(
        pytester,
        "s",
        f"""
        cases:
          - id: shoe
            prompt: "The same red shoe on a beach"
            {field}: {image}
            size: 256x256
            quality: low
        """,
    )


def test_dev_zero_as_an_input_is_refused_without_reading_it(pytester: pytest.Pytester) -> None:
    _edit_suite(pytester, "/dev/zero")
    proc = run_capped(pytester, "--collect-only", "-q")  # the old loader read it until it died
    out = proc.stdout + proc.stderr
    assert "s.yaml:4: case 'shoe': field 'image': '/dev/zero' is outside the project" in out, out[
        -3000:
    ]
    assert "MemoryError" not in out and "Traceback" not in out


def test_a_fifo_as_an_input_is_refused_without_waiting_on_it(pytester: pytest.Pytester) -> None:
    (pytester.path / "prompt_suites").mkdir()
    os.mkfifo(pytester.path / "prompt_suites" / "pipe.png")
    _edit_suite(pytester, "pipe.png")
    try:  # the old loader opened it and waited for a writer for ever
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:randomly", "--collect-only", "-q"],
            cwd=pytester.path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("collection hung reading a FIFO")
    assert (
        "s.yaml:4: case 'shoe': field 'image': 'pipe.png' is not a regular file (a device, "
        "FIFO or socket would be read without end); give the path of an image file"
    ) in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_an_input_outside_the_project_is_refused(pytester: pytest.Pytester, where: str) -> None:
    outside = _small_png(pytester.path.parent / f"outside-{pytester.path.name}.png")
    try:
        shown = str(outside) if where == "absolute" else f"../../{outside.name}"
        _edit_suite(pytester, shown)
        result = pytester.runpytest("--collect-only", "-q")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                f"*s.yaml:4: case 'shoe': field 'image': '{shown}' is outside the project "
                f"({pytester.path.resolve()}): an input image is uploaded with the request, so "
                "it must be a file inside the project; copy it into the project*"
            ]
        )
    finally:
        outside.unlink()


def test_a_symlink_out_of_the_project_and_a_mask_outside_are_refused(
    pytester: pytest.Pytester,
) -> None:
    outside = _small_png(pytester.path.parent / f"outside-{pytester.path.name}.png")
    try:
        _small_png(pytester.path / "prompt_suites/shoe.png")
        (pytester.path / "prompt_suites/link.png").symlink_to(outside)
        case = 'cases:\n  - id: shoe\n    prompt: "A shoe"\n    size: 256x256\n    image: '
        write_suite(pytester, "s", f"{case}shoe.png\n    mask: {outside}\n")
        write_suite(pytester, "t", f"{case}link.png\n")
        result = pytester.runpytest("--collect-only", "-q")
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines_random(
            [
                f"*s.yaml:6: case 'shoe': field 'mask': '{outside}' is outside the project*",
                "*t.yaml:5: case 'shoe': field 'image': 'link.png' is outside the project*",
            ]
        )
    finally:
        outside.unlink()


def test_an_input_over_50_mb_is_refused_before_it_is_read(pytester: pytest.Pytester) -> None:
    big = pytester.path / "prompt_suites/huge.png"
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:  # sparse: no disk space, no time
        handle.truncate(50 * 1024 * 1024 + 1)
    _edit_suite(pytester, "huge.png")
    result = pytester.runpytest("--collect-only", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*s.yaml:4: case 'shoe': field 'image': 'huge.png' is 50.0 MB; an input image may be "
            "at most 50 MB: save it smaller*"
        ]
    )


@pytest.mark.parametrize("side", [30000, 10000])  # past twice Pillow's limit; past the limit
def test_a_decompression_bomb_input_is_one_error_line(pytester: pytest.Pytester, side: int) -> None:
    bomb = _bomb_png(pytester.path / "prompt_suites/bomb.png", side, side)
    assert bomb.stat().st_size < 200
    _edit_suite(pytester, "bomb.png")
    result = pytester.runpytest(
        "--collect-only", "-q", "-W", "error::PIL.Image.DecompressionBombWarning"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*s.yaml:4: case 'shoe': field 'image': 'bomb.png': image too large: {side}x{side} "
            "pixels is more than Pillow's limit of 89,478,485 pixels (PIL.Image.MAX_IMAGE_PIXELS)"
            "; use a smaller image"
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "DecompressionBomb" not in out


def test_inputs_inside_the_project_still_load(pytester: pytest.Pytester) -> None:
    _small_png(pytester.path / "assets/shoe.png")
    _edit_suite(pytester, "../assets/shoe.png")
    result = pytester.runpytest("--collect-only", "-q")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(["prompt_suites/s.yaml::shoe"])


# ------------------------------------------------ 17. short keys: masked or refused

SHORT_KEY = "k9Q/z7"  # six characters, one that URL-encodes


def test_a_six_character_key_echoed_by_a_401_reaches_neither_terminal_nor_junit(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_API_KEY", SHORT_KEY)
    write_suite(project, "s", 'cases:\n  - {id: kite, prompt: "A kite", size: 256x256}\n')
    live_env.inject({"status": 401, "message": f"Incorrect API key provided: {SHORT_KEY}"})
    result = project.runpytest(
        "--imagegen-record-mode=all", "--junitxml=junit.xml", "--imagegen-report=r.json", "-vvv"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*HTTP 401*Incorrect API key provided: [*][*][*]"])
    from pytest_imagegen.api.redact import key_digest

    assert live_env.log[0]["key_sha256"] == key_digest(SHORT_KEY)  # it was the key sent
    out = result.stdout.str() + result.stderr.str()
    for form in (SHORT_KEY, "k9Q%2Fz7", "k9Q%2fz7"):
        assert form not in out
        assert form not in (project.path / "junit.xml").read_text()
        assert not [p for p in project.path.rglob("*") if p.is_file() and form in p.read_text()]


def test_a_six_character_key_is_masked_url_encoded_too() -> None:
    from pytest_imagegen.api.redact import Redactor

    redactor = Redactor([SHORT_KEY])
    text = f"a={SHORT_KEY} b=k9Q%2Fz7 c=k9Q%2fz7"
    assert redactor.find(text) == "the API key"
    assert SHORT_KEY not in redactor.mask(text) and "z7" not in redactor.mask(text)
    assert redactor.find("image data " * 100) is None


@pytest.mark.parametrize("name", ["IMAGEGEN_API_KEY", "WISGATE_API_KEY", "OPENAI_API_KEY"])
def test_a_key_under_four_characters_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, " Zq7 ")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*pytest-imagegen: ${name} is set to 3 characters, too short for an API key (at "
            "least 4; such a key could not be masked in the output): set it to the real key, "
            "or unset it to replay from cassettes*"
        ]
    )
    assert "Zq7" not in result.stdout.str() + result.stderr.str()


def test_a_blank_key_variable_counts_as_unset(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_API_KEY", "  ")  # e.g. a CI secret that forks do not get
    assert pytester.runpytest("--collect-only").ret == pytest.ExitCode.NO_TESTS_COLLECTED


# ---------------------------------------- 19. the ledger: forged lines, control codes

OSC_LINK = "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07"


def test_forged_ledger_lines_are_skipped_and_control_codes_never_printed(
    pytester: pytest.Pytester,
) -> None:
    import json

    def line(**fields: object) -> str:
        base: dict[str, object] = {
            "nodeid": "prompt_suites/s.yaml::kite", "category": "kites", "prompt_sha256": "a",
            "list_cost": 0.25, "actual_cost": 0.25, "outcome": "ok", "server": "live",
        }  # fmt: skip
        return json.dumps({**base, **fields})

    lines = [
        line(),  # 1: counted
        line(actual_cost=-999),  # 2: a forged refund
        line(actual_cost=float("nan")),  # 3: NaN (json writes it, json reads it)
        line(actual_cost="0.5"),  # 4
        line(nodeid=42),  # 5
        "{not json",  # 6
        "[1, 2]",  # 7
        # 8: counted, printed as plain text
        line(
            nodeid=OSC_LINK, category="\x1b[31mred\x1b[0m\x9b2J", prompt_sha256="b", actual_cost=1
        ),
        line(list_cost=float("inf")),  # 9
        line(actual_cost=True),  # 10
        line(params="model=x"),  # 11
    ]
    ledger = pytester.path / "prompt_suites/.imagegen/ledger.jsonl"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = pytester.runpytest("--imagegen-ledger")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "kites * 1 * 1 * $0.2500",
            "  prompt_suites/s.yaml::kite * 1 * 1 * $0.2500",
            "red * 1 * 1 * $1.0000",
            "  click * 1 * 1 * $1.0000",
            "total * 2 * 2 * $1.2500",
            "skipped 9 malformed lines: 2, 3, 4, 5, 6, 7, 9, 10, 11 (not JSON, a field of the "
            "wrong type, or a cost that is negative or not a number); they are not counted",
        ]
    )
    out = result.stdout.str()
    assert "999" not in out and "evil" not in out
    assert not [c for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]


def test_plain_removes_every_kind_of_control_sequence() -> None:
    from pytest_imagegen.money.ledger import plain

    assert plain(OSC_LINK) == "click"
    assert (
        plain("\x1b]0;title\x1b\\a\x1b[2J\x1b[?25lb\x9b31mc\x9d8;;x\x9cd\x1bPq#\x1b\\e") == "abcde"
    )
    assert plain("tab\there\nnext\x00\x7f\u202eevil") == "tab here nextevil"
    assert plain("sk-…5d60 prompt_suites/s.yaml::kite[quality=low]") == (
        "sk-…5d60 prompt_suites/s.yaml::kite[quality=low]"
    )


# ------------------------------------------------------------- 24. the pluggy floor


def test_pluggy_floor_has_the_wrappers_the_plugin_uses() -> None:
    """pytest 7.4 allows pluggy 1.0, whose hookimpl has no ``wrapper=``: importing the plugin
    failed there. The floor is declared and the oldest session installs exactly it."""
    import re

    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    assert deps is not None
    assert re.search(r'^\s*"pluggy>=1\.2"', deps.group(1), re.M), "pluggy>=1.2 not declared"
    pins = (ROOT / "constraints/oldest.txt").read_text().splitlines()
    assert "pluggy==1.2.0" in pins and "pytest==7.4.0" in pins
    assert "hookimpl(wrapper=True)" in (ROOT / "pytest_imagegen/plugin.py").read_text()
    test_extra = re.search(r"^test = \[(.*?)^\]", text, re.S | re.M)
    assert test_extra is not None and '"pytest-randomly>=' in test_extra.group(1)


# ------------------------------- 23. nothing of one session's secrecy outlives it

TRANSPORTS = [
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
]


def _transports() -> list[object]:
    import httpx

    return [getattr(httpx, cls).__dict__.get(method) for _, cls, method in TRANSPORTS]


def test_a_refused_cassette_leaves_no_http_patch_behind(
    tmp_path: Path, fake_server: FakeImagesServer
) -> None:
    """vcrpy saves before it unpatches: a save that raises (a refused secret) used to leave
    its patches on httpx until the garbage collector closed them, at any later moment,
    putting back what was there when they were made (another session's hooks)."""
    import httpx

    from pytest_imagegen.api.errors import CassetteError
    from pytest_imagegen.cassettes.persister import Persister, open_cassette
    from pytest_imagegen.cassettes.store import ImageStore

    key = "sk-the-canary-key-1234"
    before = _transports()
    persister = Persister(ImageStore(tmp_path / "images"), [key], fix="x", fresh=True)
    with (
        pytest.raises(CassetteError, match="refused to write cassette"),
        open_cassette(tmp_path / "c.yaml", persister, record=True),
        httpx.Client() as client,
    ):
        client.post(
            fake_server.url + "/images/generations",
            json={"model": "gpt-image-2", "prompt": f"A {key}", "size": "256x256"},
            headers={"Authorization": "Bearer k"},
        )
    assert _transports() == before  # no gc.collect() needed
    assert not (tmp_path / "c.yaml").exists()


TWO_SESSIONS = """
import pytest

args = ["-p", "no:cacheprovider", "-p", "no:randomly", "--imagegen-record-mode=once", "-q"]
first = pytest.main([*args, "test_first.py"])
later = pytest.main([*args, "test_later.py"])
print("exit codes:", int(first), int(later))
"""


def test_a_refused_write_does_not_unguard_a_later_session(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order dependence of test_proxy_authorization_is_scrubbed_and_encoded_keys_refused,
    made deterministic: two sessions in one process (as pytester runs them). A refused
    write left vcrpy's patches on httpx, alive as long as the failure's traceback
    (``sys.last_traceback``, reference cycles); collected in a later session, they put back
    the transports of before, taking the running test's cassette and guard with them: its
    request went out unrecorded and unguarded, and the URL-encoded key was never looked
    for (the test passed, a cassette that should have been refused was not)."""
    monkeypatch.setenv("WISGATE_API_KEY", "sk-special/key+with=chars&more")
    post = """
        import gc, os, types, urllib.parse
        import httpx, pytest

        def post(prompt):
            return httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
                json={"model": "gpt-image-2", "prompt": prompt, "size": "256x256",
                      "quality": "low"},
                headers={"Authorization": "Bearer " + os.environ["IMAGEGEN_API_KEY"]})
    """
    project.makepyfile(
        test_first=textwrap.dedent(post)
        + textwrap.dedent(
            """
            @pytest.mark.imagegen
            def test_a_plain_key():
                post("A kite " + os.environ["IMAGEGEN_API_KEY"])
            """
        ),
        test_later=textwrap.dedent(post)
        + textwrap.dedent(
            """
            def collect_what_earlier_sessions_left():
                # what the garbage collector does to vcrpy's open patchers once the last
                # reference to them goes (when is up to it): close them
                for gen in gc.get_objects():
                    if not isinstance(gen, types.GeneratorType) or gen.gi_frame is None:
                        continue
                    frame = gen.gi_frame
                    if gen.gi_code.co_name != "_patch_generator":
                        continue
                    if "test_b_encoded_key" not in str(frame.f_locals["cassette"]._path):
                        gen.close()

            @pytest.mark.imagegen
            def test_b_encoded_key():
                collect_what_earlier_sessions_left()
                post("A kite " + urllib.parse.quote(os.environ["WISGATE_API_KEY"], safe=""))
            """
        ),
        two_sessions=TWO_SESSIONS,
    )
    proc = subprocess.run(
        [sys.executable, "two_sessions.py"],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "exit codes: 1 1" in out, out[-3000:]  # each session: its one test refused
    # the later session's guard is still in place: its request is refused, not sent
    assert "request was not sent: its body contains the API key (URL-encoded)" in out
    assert live_env.requests == 0
    assert not list(project.path.glob("cassettes/*/*.yaml"))


def test_a_refused_write_leaves_nothing_on_httpx_for_the_next_session(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    before = _transports()
    write_suite(
        project,
        "s",
        f'cases:\n  - {{id: kite, prompt: "A kite {CANARY_KEY}", size: 256x256, quality: low}}\n',
    )
    project.runpytest(ONCE).assert_outcomes(failed=1)  # a suite case: refused, too
    assert _transports() == before
