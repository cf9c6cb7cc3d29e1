"""SPEC §4: record once, replay offline for $0, prompt-aware, no secrets on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from pytest_imagegen.api.redact import key_digest
from pytest_imagegen.cassettes.cassette import CaseCassette
from pytest_imagegen.cassettes.persister import Persister, open_cassette
from pytest_imagegen.cassettes.store import ImageStore
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, needs_xdist, write_suite

SUITE = """
    defaults: {{size: 256x256, quality: low}}
    cases:
      - id: kite
        prompt: "{prompt}"
"""
CASSETTE = Path("prompt_suites/cassettes/s/kite.yaml")


def record_mode(mode: str) -> str:
    return f"--imagegen-record-mode={mode}"


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def recorded(project: pytest.Pytester, live_env: FakeImagesServer) -> pytest.Pytester:
    """A project whose case `kite` has a fresh cassette."""
    write_suite(project, "s", SUITE.format(prompt="A red kite over the dunes"))
    project.runpytest(record_mode("once")).assert_outcomes(passed=1)
    assert live_env.requests == 1
    live_env.reset()
    return project


# ------------------------------------------------------------- modes x states


@pytest.mark.parametrize(
    "mode, state, outcome, requests",
    [
        ("none", "missing", "failed", 0),
        ("none", "fresh", "passed", 0),
        ("none", "stale", "failed", 0),
        ("once", "missing", "passed", 1),
        ("once", "fresh", "passed", 0),
        ("once", "stale", "failed", 0),
        ("new_episodes", "missing", "passed", 1),
        ("new_episodes", "fresh", "passed", 0),
        ("new_episodes", "stale", "passed", 1),
        ("all", "missing", "passed", 1),
        ("all", "fresh", "passed", 1),
        ("all", "stale", "passed", 1),
    ],
)
def test_record_modes(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    mode: str,
    state: str,
    outcome: str,
    requests: int,
) -> None:
    write_suite(project, "s", SUITE.format(prompt="A red kite over the dunes"))
    if state != "missing":
        project.runpytest(record_mode("once")).assert_outcomes(passed=1)
    if state == "stale":
        write_suite(project, "s", SUITE.format(prompt="A blue kite over the dunes"))
    live_env.reset()
    # a new prompt draws a new picture: drift (tested elsewhere) would fail the re-recording
    result = project.runpytest(record_mode(mode), "--imagegen-drift=off")
    result.assert_outcomes(**{outcome: 1})
    assert live_env.requests == requests
    if outcome == "passed":  # whatever happened, the cassette now matches the case
        project.runpytest(record_mode("none"), "--imagegen-drift=off").assert_outcomes(passed=1)
        assert live_env.requests == requests


def test_stale_message_names_each_change_and_cost(
    recorded: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        recorded,
        "s",
        """
        defaults: {size: 1024x1024, quality: medium, params: {output_format: jpeg}}
        cases:
          - id: kite
            prompt: "A blue kite over the dunes"
        """,
    )
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "stale cassette for prompt_suites/s.yaml::kite: the case changed since kite.yaml was recorded:",
            "    prompt: 'A red kite over the dunes' → 'A blue kite over the dunes'",
            "    size: '256x256' → '1024x1024'",
            "    quality: 'low' → 'medium'",
            "    output_format: (unset) → 'jpeg'",
            "  re-record it with `pytest --imagegen-record-mode=new_episodes prompt_suites/s.yaml::kite` (estimated cost $0.05*)",
        ]
    )
    assert live_env.requests == 0


def test_host_is_not_part_of_matching(
    recorded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeImagesServer() as other:
        monkeypatch.setenv("IMAGEGEN_BASE_URL", other.url)
        recorded.runpytest().assert_outcomes(passed=1)
        assert other.requests == 0


def test_replay_is_offline_without_key_or_server(
    recorded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGEGEN_API_KEY")
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    result = recorded.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*replayed: 1*", "spent: $0.0000  live-equivalent: $0.0010  saved by replay: $0.0010"]
    )


def test_summary_counts_recorded_and_spent(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE.format(prompt="A red kite"))
    result = project.runpytest(record_mode("once"))
    result.stdout.fnmatch_lines(["*recorded: 1*", "spent: $0.00*  saved by replay: $0.0000"])
    meta = yaml.safe_load(CASSETTE.read_text())["imagegen"]
    assert meta["list_cost"] >= meta["actual_cost"] > 0
    assert meta["request"]["prompt"] == "A red kite"


# ------------------------------------------------------------- file format


def test_cassette_is_vcrpy_yaml_with_image_sidecars(recorded: pytest.Pytester) -> None:
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    text = CASSETTE.read_text()
    requests, responses, *_ = deserialize(text, yamlserializer)  # vcrpy's own reader
    assert [r.method for r in requests] == ["POST"]
    body = responses[0]["body"]["string"].decode()
    ref = json.loads(body)["data"][0]["b64_json"]
    assert ref.startswith("imagegen-sha256:")
    image = Path("prompt_suites/cassettes/images") / ref.removeprefix("imagegen-sha256:")
    assert hashlib.sha256(image.read_bytes()).hexdigest() == image.stem
    assert len(text) < 5000  # no image bytes in the YAML


def test_replay_rebuilds_the_exact_response(tmp_path: Path, fake_server: FakeImagesServer) -> None:
    body = {"model": "gpt-image-2", "prompt": "exact", "size": "256x256", "quality": "low", "n": 2}
    path = tmp_path / "c.yaml"
    store = ImageStore(tmp_path / "images")

    def call() -> httpx.Response:
        with httpx.Client() as client:
            return client.post(
                fake_server.url + "/images/generations",
                json=body,
                headers={"Authorization": "Bearer k"},
            )

    persister = Persister(store, [], fix="re-record")
    persister.fresh = True
    with open_cassette(path, persister, record=True):
        live = call()
    with open_cassette(path, Persister(store, [], fix="x"), record=False):
        replayed = call()
    assert replayed.content == live.content
    assert replayed.status_code == live.status_code
    assert replayed.headers["content-type"] == live.headers["content-type"]
    assert fake_server.requests == 1


@pytest.mark.parametrize(
    "extra",
    [{}, {"model": "dall-e-2", "quality": None, "response_format": "url"}],
    ids=["b64", "url"],
)
def test_fast_replay_equals_the_vcrpy_replay(
    tmp_path: Path, fake_server: FakeImagesServer, extra: dict[str, object]
) -> None:
    """Suite replays skip HTTP and base64; they must give what a client gets through vcrpy."""
    from pytest_imagegen.api.client import ImagesClient

    body = {"model": "gpt-image-2", "prompt": "twins", "size": "256x256", "quality": "low", "n": 2}
    body.update(extra)
    body = {k: v for k, v in body.items() if v is not None}
    path = tmp_path / "c.yaml"
    store = ImageStore(tmp_path / "images")
    client = ImagesClient(fake_server.url, "sk-test-key-123", max_retries=0)
    persister = Persister(store, [], fix="re-record", fresh=True)
    persister.request_body = body
    with open_cassette(path, persister, record=True):
        live = client.generate(body)
    with open_cassette(path, Persister(store, [], fix="x"), record=False):
        through_vcr = client.generate(body)
    fast = CaseCassette(path, "fix").generation(body, store)
    assert fast is not None
    generation, meta = fast
    assert len(meta["images"]) == 2  # the cassette's imagegen block lists its sidecars
    for other in (live, through_vcr):
        assert [i.data for i in generation.images] == [i.data for i in other.images]
        assert generation.revised_prompts == other.revised_prompts
        assert generation.usage == other.usage and generation.meta == other.meta
    assert [i.sha256 for i in generation.images] == [
        hashlib.sha256(i.data).hexdigest() for i in live.images
    ]
    assert CaseCassette(path, "fix").generation({**body, "prompt": "other"}, store) is None


def test_identical_images_are_stored_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: one, prompt: "Same picture"}
          - {id: two, prompt: "Same picture", tags: [again]}
          - {id: three, prompt: "Other picture"}
        """,
    )
    project.runpytest(record_mode("once")).assert_outcomes(passed=3)
    images = list(Path("prompt_suites/cassettes/images").iterdir())
    assert len(images) == 2
    assert len(list(Path("prompt_suites/cassettes/s").glob("*.yaml"))) == 3


def test_footprint_of_a_1024_case(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(
        project,
        "s",
        "cases:\n  - {id: big, prompt: 'A harbour at noon', size: 1024x1024, quality: low}\n",
    )
    project.runpytest(record_mode("once")).assert_outcomes(passed=1)
    (image,) = Path("prompt_suites/cassettes/images").iterdir()
    raw = image.stat().st_size
    on_disk = sum(p.stat().st_size for p in all_files(Path("prompt_suites/cassettes")))
    assert raw > 1_000_000
    assert on_disk <= 1.02 * raw, (on_disk, raw)


def test_url_images_are_stored_and_replayed(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(
        project,
        "s",
        "cases:\n  - {id: kite, model: dall-e-2, prompt: 'A kite', size: 256x256, n: 2, params: {response_format: url}}\n",
    )
    project.runpytest(record_mode("once")).assert_outcomes(passed=1)
    assert live_env.downloads == 2
    assert len(list(Path("prompt_suites/cassettes/images").iterdir())) == 2
    assert "!!binary" not in CASSETTE.read_text()
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    project.runpytest().assert_outcomes(passed=1)
    assert live_env.requests == 1 and live_env.downloads == 2


# ------------------------------------------------------------ errors / damage


def test_errors_are_not_recorded_and_retries_record_one_exchange(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SUITE.format(prompt="A kite"))
    live_env.inject({"status": 400, "code": "content_policy_violation"})
    project.runpytest(record_mode("once")).assert_outcomes(failed=1)
    assert not Path("prompt_suites/cassettes").exists()
    live_env.inject({"status": 500}, {"status": 429, "retry_after": 0.01})
    project.runpytest(record_mode("once")).assert_outcomes(passed=1)
    interactions = yaml.safe_load(CASSETTE.read_text())["interactions"]
    assert [i["response"]["status"]["code"] for i in interactions] == [200]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_damaged_image_is_a_clear_error(recorded: pytest.Pytester, damage: str) -> None:
    (image,) = Path("prompt_suites/cassettes/images").iterdir()
    if damage == "corrupt":
        image.write_bytes(image.read_bytes()[:-10] + b"0123456789")
    else:
        image.unlink()
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    word = "is corrupt" if damage == "corrupt" else "is missing"
    result.stdout.fnmatch_lines(
        [
            f"image file *{image.name}* {word}*re-record it with `pytest --imagegen-record-mode=all prompt_suites/s.yaml::kite`"
        ]
    )


def test_unparsable_cassette_is_a_clear_error(recorded: pytest.Pytester) -> None:
    text = CASSETTE.read_text()
    CASSETTE.write_text(text + "\n  broken: [unclosed\n")
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["cassette *kite.yaml is damaged: not valid YAML*delete it and re-record it with*"]
    )


# ------------------------------------------------------------------- secrets


def test_canary_key_never_reaches_disk(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY + "-openai")
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: "A kite"}
          - {id: b, prompt: "A boat", params: {response_format: url}, model: dall-e-2, quality: standard}
        """,
    )
    step_summary = project.path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    writers = [  # every file-writing feature is on
        "--junitxml=junit.xml", "--imagegen-report=r.json", "--imagegen-markdown=r.md",
        "--imagegen-html=html", "--imagegen-budget=1",
    ]  # fmt: skip
    result = project.runpytest(record_mode("once"), *writers)
    result.assert_outcomes(passed=2)
    assert live_env.log[0]["key_sha256"] == key_digest(CANARY_KEY)  # it was really sent
    project.runpytest("--imagegen-update-baselines", *writers).assert_outcomes(passed=2)
    files = all_files(project.path)
    names = {p.name for p in files}
    assert {
        "junit.xml",
        "r.json",
        "r.md",
        "index.html",
        "s.json",
        "ledger.jsonl",
        "step.md",
    } <= names
    assert any(p.suffix == ".yaml" and "cassettes" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in (CANARY_KEY.encode(), b"Bearer ", b"authorization", b"Authorization"):
            assert needle not in data, f"{needle!r} found in {path}"


def test_key_in_the_request_body_is_refused_before_sending(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """Issue 20, reproduction 18: the cassette could never be written, so every run paid."""
    write_suite(project, "s", SUITE.format(prompt=f"Poster that says {CANARY_KEY}"))
    result = project.runpytest(record_mode("once"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*was not sent: its body contains the API key*"])
    assert not CASSETTE.exists()
    assert live_env.requests == 0
    result.stdout.fnmatch_lines(["spent: $0.0000*"])
    for path in all_files(project.path):
        if path.name != "s.yaml":  # the suite itself, written by this test
            assert CANARY_KEY.encode() not in path.read_bytes(), path


def test_persister_scrubs_query_and_refuses_other_places(
    tmp_path: Path, fake_server: FakeImagesServer
) -> None:
    store = ImageStore(tmp_path / "images")
    persister = Persister(store, [CANARY_KEY], fix="x", fresh=True)
    path = tmp_path / "c.yaml"
    body = {"model": "gpt-image-2", "prompt": "q", "size": "256x256", "quality": "low"}
    with open_cassette(path, persister, record=True), httpx.Client() as client:
        client.post(
            fake_server.url + f"/images/generations?api-key={CANARY_KEY}",
            json=body,
            headers={
                "Authorization": f"Bearer {CANARY_KEY}",
                "OpenAI-Project": "proj_secret",
                "x-api-key": CANARY_KEY,
            },
        )
    text = path.read_text()
    assert CANARY_KEY not in text and "proj_secret" not in text
    # a gateway's own credential header (Helicone-Auth, X-Gateway-Key, ...) is never
    # recorded: a request keeps only its content type (issue 20, found by the attacker)
    persister = Persister(store, [CANARY_KEY], fix="x", fresh=True)
    with open_cassette(tmp_path / "d.yaml", persister, record=True), httpx.Client() as client:
        client.post(
            fake_server.url + "/images/generations",
            json=body,
            headers={"Authorization": "Bearer k", "X-Custom": CANARY_KEY,
                     "Helicone-Auth": "Bearer sk-helicone-SECRET123456"},
        )  # fmt: skip
    text = (tmp_path / "d.yaml").read_text()
    assert CANARY_KEY not in text and "SECRET123456" not in text and "X-Custom" not in text


# ----------------------------------------------------------- interrupted runs


def _loadable(root: Path) -> None:
    """Every cassette and image left on disk is complete and loads."""
    cassettes = root / "prompt_suites" / "cassettes"
    for path in cassettes.rglob("*"):
        assert not path.name.endswith(".partial"), path
        if path.suffix == ".yaml":
            persister = Persister(ImageStore(cassettes / "images"), [], fix="x")
            _, responses = persister.load_cassette(path, None)
            payload = json.loads(responses[0]["body"]["string"])
            for item in payload["data"]:
                base64.b64decode(item["b64_json"], validate=True)
        elif path.parent.name == "images":
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_recording_leaves_only_complete_files(
    project: pytest.Pytester, live_env: FakeImagesServer, sig: signal.Signals
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: "First"}
          - {id: b, prompt: "Second"}
          - {id: c, prompt: "Third"}
          - {id: d, prompt: "Fourth"}
        """,
    )
    # the first answer comes at once, the next ones are held 5 s: the signal lands while
    # one is in flight however late this process is scheduled (with a plain latency, all
    # four once finished before the signal on a busy machine)
    live_env.inject({"delay": 0.01}, {"delay": 5, "count": 3})
    # the child handles Ctrl-C itself even if it inherits SIGINT ignored: seen when this test
    # ran late in a full run (the parent had SIGINT and SIGQUIT ignored for a moment)
    start = (
        "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.exit(pytest.main(['-p', 'no:cacheprovider', {record_mode('once')!r}]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start],
        cwd=project.path,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cassettes = project.path / "prompt_suites" / "cassettes" / "s"
    deadline = time.monotonic() + 60
    while live_env.failures_started < 2 and proc.poll() is None:  # the second is held now
        assert time.monotonic() < deadline, "the recording never reached its second case"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    done = sorted(p.stem for p in cassettes.glob("*.yaml"))
    assert 1 <= len(done) < 4, done
    _loadable(project.path)
    live_env.reset()
    project.runpytest(record_mode("once")).assert_outcomes(passed=4)
    assert live_env.requests == 4 - len(done)  # only what was missing is recorded
    _loadable(project.path)


# -------------------------------------------------------------------- xdist


@needs_xdist
def test_record_and_replay_under_xdist(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: "Shared"}
          - {id: b, prompt: "Shared", tags: [x]}
          - {id: c, prompt: "Third"}
          - {id: d, prompt: "Fourth"}
          - {id: e, prompt: "Fifth"}
          - {id: f, prompt: "Sixth"}
        """,
    )
    result = project.runpytest("-n", "2", record_mode("once"))
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*recorded: 6*"])
    assert live_env.requests == 6
    assert len(list(Path("prompt_suites/cassettes/images").iterdir())) == 5
    _loadable(project.path)
    live_env.reset()
    result = project.runpytest("-n", "2")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*replayed: 6*"])
    assert live_env.requests == 0
