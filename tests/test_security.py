"""Issue 11 / SPEC §12: no key in any output, no file outside the suites, no cost hole."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from pytest_imagegen.api.settings import Settings
from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.context import RunContext
from pytest_imagegen.money.prices import PriceTable

from .conftest import CANARY_KEY, DEAD_URL, write_suite

ONCE = "--imagegen-record-mode=once"
ALL = "--imagegen-record-mode=all"
SPECIAL_KEY = "sk-special/key+with=chars&more"
SUITE = """
    defaults: {size: 256x256, quality: low}
    cases:
      - id: kite
        prompt: "A red kite over the dunes"
"""


def key_forms(key: str = CANARY_KEY) -> list[bytes]:
    """The key as it could leak: plain, URL-encoded, base64 (also inside user:key)."""
    raw = key.encode()
    forms = {raw, quote(key, safe="").encode(), base64.b64encode(raw)}
    forms.add(base64.b64encode(b"user:" + raw)[8:-4])
    forms.add(base64.urlsafe_b64encode(raw))
    return sorted(forms)


def leaks(data: bytes, key: str = CANARY_KEY) -> list[bytes]:
    return [form for form in key_forms(key) if form in data]


def files_leaking(root: Path, skip: tuple[str, ...] = (), key: str = CANARY_KEY) -> list[str]:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and path.name not in skip and leaks(path.read_bytes(), key):
            out.append(str(path.relative_to(root)))
    return out


def ledger_lines(root: Path) -> list[dict[str, object]]:
    (path,) = root.rglob("ledger.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_test(pytester: pytest.Pytester, source: str, name: str = "test_images") -> None:
    pytester.makepyfile(**{name: textwrap.dedent(source)})


# ------------------------------------------------------------------ redaction


def test_redactor_finds_every_form_and_masks_it() -> None:
    from pytest_imagegen.api.redact import APIKey, Redactor

    redactor = Redactor([CANARY_KEY, "abc"])
    for prefix in ("", "u:", "us:", "user:"):
        basic = base64.b64encode(f"{prefix}{CANARY_KEY}".encode()).decode()
        assert redactor.find(f"Proxy-Authorization: Basic {basic}") is not None, prefix
        assert redactor.find(redactor.mask(basic)) is None
    assert redactor.find(f"?key={quote(CANARY_KEY)}") is not None
    assert redactor.mask(f"Bearer {CANARY_KEY}") == "Bearer sk-…5d60"
    assert redactor.find("abc prompt") is None  # under 4 characters: refused at configure
    assert (
        repr(APIKey(CANARY_KEY)) == "APIKey('sk-…5d60')" and str(APIKey(CANARY_KEY)) != CANARY_KEY
    )


def test_run_context_repr_holds_no_key() -> None:
    ctx = RunContext(
        settings=Settings(), prices=PriceTable.load(), environ={"IMAGEGEN_API_KEY": CANARY_KEY}
    )
    ctx.client()
    text = repr(ctx) + repr(ctx._clients) + repr(list(ctx._clients.values()))
    assert not leaks(text.encode()) and CANARY_KEY not in ctx._clients


# ------------------------------------------------------------ 1. path traversal


@pytest.fixture
def recorded(project: pytest.Pytester, live_env: FakeImagesServer) -> pytest.Pytester:
    write_suite(project, "s", SUITE)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    live_env.reset()
    return project


@pytest.mark.parametrize(
    "sha, ext",
    [
        ("/proc/self/", "/environ"),
        ("../../../secret", "txt"),
        ("0" * 64, "png/../../../../secret.txt"),
    ],
    ids=["proc-environ", "dotdot", "ext-traversal"],
)
def test_forged_baseline_entry_is_damaged_and_nothing_is_copied(
    recorded: pytest.Pytester, sha: str, ext: str
) -> None:
    (recorded.path / "secret.txt").write_text(f"export KEY={CANARY_KEY}\n")
    path = recorded.path / "prompt_suites/baselines/s.json"
    data = json.loads(path.read_text())
    image = data["cases"]["kite"]["images"][0]
    image.update(sha256=sha, ext=ext)
    image["hashes"] = {"phash": "0" * 16, "colorhash": "0" * 14}  # drift would be off anyway
    path.write_text(json.dumps(data))
    result = recorded.runpytest("--imagegen-html=review")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*baseline file prompt_suites/baselines/s.json is damaged*"])
    previews = recorded.path / "review/previews"
    copied = [p.name for p in previews.iterdir()] if previews.is_dir() else []
    assert all(len(name.split(".")[0]) == 64 for name in copied), copied
    assert files_leaking(recorded.path / "review") == []


def test_symlinked_sidecar_leading_outside_is_refused(
    recorded: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "stolen.png"
    outside.write_text(f"KEY={CANARY_KEY}")
    images = recorded.path / "prompt_suites/cassettes/images"
    (sidecar,) = images.iterdir()
    sidecar.unlink()
    sidecar.symlink_to(outside)
    result = recorded.runpytest("--imagegen-html=review")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cassette*kite.yaml is damaged*leads outside*"])
    assert files_leaking(recorded.path / "review") == []


def test_symlinked_baseline_file_is_not_read(
    recorded: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    baseline = recorded.path / "prompt_suites/baselines/s.json"
    outside = tmp_path_factory.mktemp("outside") / "s.json"
    outside.write_text(baseline.read_text())
    baseline.unlink()
    baseline.symlink_to(outside)
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*baseline file prompt_suites/baselines/s.json was not read*"])


# --------------------------------------------------- 2./3. tracebacks, refusals


SDK_TEST = """
import os, openai, pytest

@pytest.mark.imagegen(max_cost=0.01)
def test_{name}():
    client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                           api_key=os.environ["IMAGEGEN_API_KEY"], max_retries={retries})
    r = client.images.generate(model="gpt-image-2", prompt="A logo", size="256x256",
                               quality="low")
    {check}
"""
FIXTURE_TEST = """
import os

def test_logo(imagegen):
    result = imagegen.generate({prompt}, size="256x256", quality="low")
    assert result.images == []  # fails: the traceback shows the fixture's locals
"""


def test_tracebacks_with_locals_show_no_key(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, FIXTURE_TEST.format(prompt="'A paper plane'"))
    result = project.runpytest(ONCE, "-l", "-vvv", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*imagegen*=*"])  # the fixture's repr is really shown
    assert not leaks(result.stdout.str().encode() + result.stderr.str().encode())
    assert files_leaking(project.path) == []


def test_refused_cassette_shows_no_key_with_locals(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, FIXTURE_TEST.format(prompt='"Say " + os.environ["IMAGEGEN_API_KEY"]'))
    result = project.runpytest(ONCE, "-l", "-vvv", "--junitxml=junit.xml", "--tb=long")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*request was not sent: its body contains the API key*"])
    assert "During handling" not in result.stdout.str()  # said once
    assert live_env.requests == 0  # refused before sending: no run pays for it
    assert "save_cassette" not in result.stdout.str()  # no internal traceback
    assert not leaks(result.stdout.str().encode())
    assert files_leaking(project.path, skip=("test_images.py",)) == []


# ------------------------------------------------------- 4. echoed keys


def test_api_error_echoing_the_key_is_masked(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE)
    live_env.inject({"status": 401, "message": f"Incorrect API key provided: Bearer {CANARY_KEY}"})
    result = project.runpytest(ALL, "--junitxml=junit.xml", "--imagegen-report=r.json", "-vvv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*HTTP 401*Incorrect API key provided: Bearer sk-…5d60*"])
    assert not leaks(result.stdout.str().encode())
    assert files_leaking(project.path) == []


def test_sdk_error_echoing_the_key_is_masked(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, SDK_TEST.format(retries=0, name="logo", check=""))
    live_env.inject({"status": 401, "message": f"Incorrect API key provided: {CANARY_KEY}"})
    result = project.runpytest(ONCE, "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AuthenticationError*Incorrect API key provided: sk-…5d60*"])
    assert not leaks(result.stdout.str().encode())
    assert files_leaking(project.path, skip=("test_images.py",)) == []


# ------------------------------------------------------- 5. encoded forms


def test_proxy_authorization_is_scrubbed_and_encoded_keys_refused(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WISGATE_API_KEY", SPECIAL_KEY)  # a second key, one that URL-encodes
    write_test(
        project,
        """
        import base64, os, urllib.parse
        import httpx, pytest

        KEY = os.environ["IMAGEGEN_API_KEY"]
        BASIC = "Basic " + base64.b64encode(("user:" + KEY).encode()).decode()

        def post(prompt):
            return httpx.post(os.environ["IMAGEGEN_BASE_URL"] + "/images/generations",
                json={"model": "gpt-image-2", "prompt": prompt, "size": "256x256",
                      "quality": "low"},
                headers={"Authorization": "Bearer " + KEY, "Proxy-Authorization": BASIC})

        @pytest.mark.imagegen
        def test_proxy():
            assert post("A kite").status_code == 200

        @pytest.mark.imagegen
        def test_base64_in_body():
            post("A kite " + base64.b64encode(KEY.encode()).decode())

        @pytest.mark.imagegen
        def test_urlencoded_in_body():
            post("A kite " + urllib.parse.quote(os.environ["WISGATE_API_KEY"], safe=""))
        """,
    )
    result = project.runpytest(ONCE)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_base64_in_body*",
            "*request was not sent: its body contains the API key (base64-encoded)*",
            "*test_urlencoded_in_body*",
            "*request was not sent: its body contains the API key (URL-encoded)*",
        ]
    )
    assert live_env.requests == 1  # only test_proxy's request was sent
    cassette = project.path / "cassettes/test_images/test_proxy.imagegen.yaml"
    assert "roxy-" not in cassette.read_text()
    assert files_leaking(project.path, skip=("test_images.py",)) == []
    assert files_leaking(project.path, skip=("test_images.py",), key=SPECIAL_KEY) == []


# ------------------------------------------------------ 6. every file writer


def test_key_in_params_never_reaches_any_report(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(
        project,
        "s",
        f"""
        cases:
          - id: kite
            prompt: "A kite"
            size: 256x256
            quality: low
            params: {{user: "{CANARY_KEY}"}}
        """,
    )
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "step.md"))
    writers = [
        "--junitxml=junit.xml", "--imagegen-report=r.json", "--imagegen-markdown=r.md",
        "--imagegen-html=html",
    ]  # fmt: skip
    result = project.runpytest(ONCE, *writers)
    result.assert_outcomes(failed=1)  # the cassette is refused
    assert "user" in (project.path / "html/index.html").read_text()
    assert not leaks(result.stdout.str().encode())
    assert files_leaking(project.path, skip=("s.yaml",)) == []
    assert json.loads((project.path / "r.json").read_text())["cases"][0]["nodeid"]


# -------------------------------------------------------- 7. Markdown injection


def test_markdown_cells_cannot_break_out(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - id: kite
            size: 256x256
            quality: low
            matrix:
              prompt: ["x` ![pixel](https://evil.example/p.png) <img src=x> | `y"]
        """,
    )
    project.runpytest(ONCE, "--imagegen-markdown=r.md").assert_outcomes(passed=1)
    from markdown_it import MarkdownIt

    md = (project.path / "r.md").read_text()
    assert "evil.example" in md and "&#" not in md  # the text is there, readable ...
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<img" not in rendered and "<a " not in rendered  # ... and renders as text only
    row = next(line for line in rendered.split("<tr>") if "evil" in line)
    assert row.count("<td") == 12  # no extra table cells
    assert "x` ![pixel](https://evil.example/p.png) &lt;img src=x&gt; | `y" in row


# ------------------------------------------------------- 8.-11. cost integrity


def test_timeouts_book_list_cost_so_the_budget_holds(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    project.makeini("[pytest]\nimagegen_timeout = 1\nimagegen_max_retries = 0\n")
    cases = "\n".join(f'  - {{id: c{i}, prompt: "Picture {i}"}}' for i in range(10))
    write_suite(project, "s", f"defaults: {{size: 1024x1024, quality: low}}\ncases:\n{cases}\n")
    live_env.latency = 3.0
    result = project.runpytest(ALL, "--imagegen-budget=0.007")
    result.assert_outcomes(failed=10)
    assert live_env.requests == 1  # the first timed out and was booked at list cost
    result.stdout.fnmatch_lines(
        ["*timed out after 1 attempt*", "*budget $0.0070 would be exceeded*"]
    )
    (line,) = ledger_lines(project.path)
    assert line["outcome"] == "unknown outcome, booked at list cost"
    assert line["actual_cost"] == line["list_cost"] > 0


def test_unreadable_2xx_books_list_cost_and_refusals_book_nothing(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE)
    live_env.inject({"raw": "<html>gateway says hi</html>"}, {"status": 400})
    project.runpytest(ALL).assert_outcomes(failed=1)
    project.runpytest(ALL).assert_outcomes(failed=1)
    unreadable, refused = ledger_lines(project.path)
    assert unreadable["outcome"] == "unreadable answer, booked at list cost"
    assert unreadable["actual_cost"] == unreadable["list_cost"]
    assert refused["outcome"] == "api error 400" and refused["actual_cost"] == 0.0


def test_connection_refused_books_nothing(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_max_retries = 1\n")
    write_suite(project, "s", SUITE)
    project.runpytest(ALL, "--imagegen-budget=0.01").assert_outcomes(failed=1)
    (line,) = ledger_lines(project.path)
    assert line["outcome"] == "not sent (connection failed)" and line["actual_cost"] == 0.0
    assert DEAD_URL


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_max_cost_is_a_collection_error(project: pytest.Pytester, value: str) -> None:
    write_suite(project, "s", SUITE + f"        max_cost: {value}\n")
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*prompt_suites/s.yaml:5: case 'kite': field 'max_cost': must be a finite number*"]
    )
    assert (
        not (project.path / "r.json").exists() or "NaN" not in (project.path / "r.json").read_text()
    )


def test_nan_max_cost_in_the_marker_is_refused(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import pytest

        @pytest.mark.imagegen(max_cost=float("nan"))
        def test_nan():
            pass
        """,
    )
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*max_cost must be a finite number of USD > 0, got nan*"])


@pytest.mark.parametrize(
    "usage, priced",
    [
        ({"output_tokens": -10000000}, "list"),
        ({"input_tokens": "many", "output_tokens": 20}, "list"),
        ({"weird_tokens": 5}, "list"),
        ({"prompt_tokens": 10, "completion_tokens": 20}, 10 * 5e-6 + 20 * 30e-6),
        ({"total_tokens": 30}, "list"),  # incomplete: the higher of list and 30 tokens
        (
            {
                "input_tokens": 10,
                "output_tokens": 30,
                "output_tokens_details": {"text_tokens": 10, "image_tokens": 20},
            },
            10 * 5e-6 + 30 * 30e-6,
        ),
    ],
    ids=["negative", "non-numeric", "unknown-shape", "chat", "total-only", "output-details"],
)
def test_every_usage_shape_is_priced_and_never_below_zero(
    project: pytest.Pytester, live_env: FakeImagesServer, usage: dict[str, object], priced: object
) -> None:
    write_suite(project, "s", SUITE)
    live_env.inject({"usage": usage})
    result = project.runpytest(ALL, "--imagegen-budget=1", "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    if priced == "list":
        assert case["actual_cost"] == case["list_cost"]
        if "total_tokens" not in usage:
            result.stdout.fnmatch_lines(["*usage cannot be priced*booked at list cost*"])
    else:
        assert case["actual_cost"] == pytest.approx(priced)
    result.stdout.fnmatch_lines(["budget: $1.0000  spent: $0.00*"])
    assert 0 < case["actual_cost"] <= 0.01


# ------------------------------------------------------------ 12. SDK retries


def test_sdk_retries_are_one_logical_call(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, SDK_TEST.format(retries=2, name="logo", check=""))
    live_env.inject({"status": 500, "count": 2})
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    assert live_env.requests == 3
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    single = PriceTable.load().list_cost("gpt-image-2", "256x256", "low", 1, "A logo").total
    assert case["list_cost"] == pytest.approx(single)
    (line,) = ledger_lines(project.path)
    assert line["attempts"] == 3 and line["outcome"] == "ok"


def test_sdk_retries_against_a_dead_server_report_the_connection_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    write_test(project, SDK_TEST.format(retries=2, name="logo", check=""))
    single = PriceTable.load().list_cost("gpt-image-2", "256x256", "low", 1, "A logo").total
    result = project.runpytest(ONCE, f"--imagegen-budget={single * 1.5}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Connect*Error*"])  # openai 1.x wraps it, 3.x may not
    assert "budget" not in result.stdout.str().split("short test summary")[-1]
    (line,) = ledger_lines(project.path)
    assert line["outcome"] == "not sent (connection failed)", line
    assert line["actual_cost"] == 0.0 and line["attempts"] == 3


# --------------------------------------------------------- 13./14. fake server


def test_fake_server_option_covers_marked_tests_with_their_own_client(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeImagesServer() as real_host:  # stands in for the paid API
        monkeypatch.setenv("REAL_HOST", real_host.url)
        monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
        write_test(
            project,
            """
            import os, httpx, openai, pytest

            @pytest.mark.imagegen(max_cost=0.01)
            def test_logo_is_square():
                client = openai.OpenAI(base_url=os.environ["REAL_HOST"], max_retries=0)
                r = client.images.generate(model="gpt-image-2", prompt="A logo",
                                           size="256x256", quality="low")
                assert r.data[0].b64_json

            @pytest.mark.imagegen
            def test_other_host_is_refused():
                httpx.get("http://example.invalid/v1/models")

            def test_unmarked_images_call_is_rerouted():
                r = httpx.post(os.environ["REAL_HOST"] + "/images/generations",
                               json={"model": "gpt-image-2", "prompt": "p", "size": "256x256"},
                               headers={"Authorization": "Bearer x-unmarked-key"})
                assert r.status_code == 200
            """,
        )
        result = project.runpytest("--imagegen-fake-server", ONCE)
        result.assert_outcomes(passed=2, failed=1)
        assert real_host.requests == 0
    result.stdout.fnmatch_lines(
        [
            "*example.invalid/v1/models was not sent: with --imagegen-fake-server nothing may leave*",
            "*every images request of this session went to the built-in fake server*",
        ]
    )
    assert (project.path / "cassettes/test_images/test_logo_is_square.imagegen.yaml").is_file()


def test_fake_server_traffic_is_kept_apart_in_the_ledger(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE)
    project.runpytest("--imagegen-fake-server", ALL).assert_outcomes(passed=1)
    project.runpytest(ALL).assert_outcomes(passed=1)  # one real (here: loopback) request
    fake, live = ledger_lines(project.path)
    assert fake["server"] == "fake" and live["server"] == "live"
    result = project.runpytest("--imagegen-ledger")
    result.stdout.fnmatch_lines(
        [
            f"total * 1 * 1 * ${live['actual_cost']:.4f}",
            "fake server (--imagegen-fake-server, not spend): 1 requests*",
        ]
    )


# ------------------------------------------------------------- the canary run


def test_canary_key_appears_nowhere(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Suites, marker, fixture and every writer, failures shown with -l -vvv, a 401 that
    echoes the key: the key is in no output and no file, in any encoding."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "step.md"))
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: kite, prompt: "A red kite"}
          - {id: boat, prompt: "A boat", expect: {count: 2}}
          - {id: echo, prompt: "An echo"}
        """,
    )
    write_test(
        project,
        SDK_TEST.format(retries=0, name="marker", check="assert len(r.data) == 2")
        + textwrap.dedent(
            """
            def test_fixture(imagegen):
                result = imagegen.generate("A plane", size="256x256", quality="low")
                imagegen.assert_no_drift(result)
                assert result.images == []
            """
        ),
    )
    writers = [
        "-l", "-vvv", "--tb=long", "--junitxml=junit.xml", "--imagegen-report=r.json",
        "--imagegen-markdown=r.md", "--imagegen-html=html", "--imagegen-budget=1",
    ]  # fmt: skip
    live_env.inject({}, {}, {"status": 401, "message": f"Incorrect API key: Bearer {CANARY_KEY}"})
    first = project.runpytest(ONCE, *writers)
    first.assert_outcomes(passed=1, failed=4)
    second = project.runpytest(*writers)  # replay, with the same failures
    ledger = project.runpytest("--imagegen-ledger")
    output = "\n".join(r.stdout.str() + r.stderr.str() for r in (first, second, ledger))
    assert "sk-…5d60" in output  # the 401's message is shown, masked
    assert leaks(output.encode()) == []
    assert files_leaking(project.path) == []
    assert {"junit.xml", "r.json", "r.md", "index.html", "ledger.jsonl", "step.md"} <= {
        p.name for p in project.path.rglob("*")
    }
    assert os.environ["IMAGEGEN_API_KEY"] == CANARY_KEY
