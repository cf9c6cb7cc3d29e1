"""SPEC §8: the imagegen marker and fixture with httpx, httpx2 and the official openai SDK."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, needs_xdist

ONCE = "--imagegen-record-mode=once"
CASSETTE = Path("cassettes/test_images/test_logo.imagegen.yaml")

OPENAI_TEST = """
import asyncio, os
import openai, pytest

PROMPT = {prompt!r}

@pytest.mark.imagegen(max_cost={max_cost})
def test_logo():
    client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                           api_key=os.environ.get("IMAGEGEN_API_KEY", "no-key"), max_retries=0)
    response = client.images.generate(model="gpt-image-2", prompt=PROMPT,
                                      size="256x256", quality="low", n={n})
    assert len(response.data) == {n}
    assert response.data[0].b64_json
"""


def write_test(pytester: pytest.Pytester, source: str, name: str = "test_images") -> None:
    pytester.makepyfile(**{name: textwrap.dedent(source)})


def openai_test(
    pytester: pytest.Pytester,
    prompt: str = "A paper plane logo",
    n: int = 1,
    max_cost: float = 0.01,
) -> None:
    write_test(pytester, OPENAI_TEST.format(prompt=prompt, n=n, max_cost=max_cost))


def all_text(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def test_openai_sdk_records_once_and_replays_with_the_server_stopped(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    openai_test(project)
    result = project.runpytest(ONCE)
    result.assert_outcomes(passed=1)
    assert live_env.requests == 1
    result.stdout.fnmatch_lines(["cases: 1  replayed: 0  recorded: 1 *", "spent: $0.00*"])
    text = (project.path / CASSETTE).read_text()
    assert text.startswith("# pytest-imagegen cassette")
    assert "imagegen-sha256:" in text and "b64_json" in text
    assert len(list((project.path / "cassettes/images").glob("*.png"))) == 1
    assert CANARY_KEY not in all_text(project.path)
    live_env.stop()  # offline from here on
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "cases: 1  replayed: 1  recorded: 0 *",
            "spent: $0.0000  live-equivalent: $0.00*  saved by replay: $0.00*",
        ]
    )
    assert "saved by replay: $0.0000" not in result.stdout.str()


def test_async_openai_and_plain_httpx_clients(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(
        project,
        """
        import asyncio, os
        import httpx, openai, pytest

        URL = os.environ["IMAGEGEN_BASE_URL"]
        KEY = os.environ.get("IMAGEGEN_API_KEY", "no-key")
        BODY = {"model": "gpt-image-2", "size": "256x256", "quality": "low", "n": 1}

        @pytest.mark.imagegen(max_cost=0.01)
        def test_async_openai():
            async def main():
                client = openai.AsyncOpenAI(base_url=URL, api_key=KEY, max_retries=0)
                r = await client.images.generate(prompt="async kite", **BODY)
                return r.data[0].b64_json
            assert asyncio.run(main())

        @pytest.mark.imagegen(max_cost=0.01)
        def test_httpx_sync():
            with httpx.Client() as client:
                r = client.post(URL + "/images/generations", json={"prompt": "sync kite", **BODY},
                                headers={"Authorization": "Bearer " + KEY})
            assert r.status_code == 200 and r.json()["data"][0]["b64_json"]

        @pytest.mark.imagegen(max_cost=0.01)
        def test_httpx_async():
            async def main():
                async with httpx.AsyncClient() as client:
                    return await client.post(URL + "/images/generations",
                                             json={"prompt": "async httpx kite", **BODY},
                                             headers={"Authorization": "Bearer " + KEY})
            r = asyncio.run(main())
            assert r.status_code == 200 and r.json()["data"][0]["b64_json"]
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=3)
    assert live_env.requests == 3
    names = sorted(p.name for p in (project.path / "cassettes/test_images").iterdir())
    assert names == [
        "test_async_openai.imagegen.yaml",
        "test_httpx_async.imagegen.yaml",
        "test_httpx_sync.imagegen.yaml",
    ]
    live_env.reset()
    result = project.runpytest()
    result.assert_outcomes(passed=3)
    assert live_env.requests == 0
    result.stdout.fnmatch_lines(["cases: 3  replayed: 3 *"])
    assert CANARY_KEY not in all_text(project.path)


def test_ceiling_refuses_before_sending_in_every_mode(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    openai_test(project, n=4, max_cost=0.002)
    for args in ([ONCE], ["--imagegen-record-mode=all"], []):
        result = project.runpytest(*args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*list cost $0.00* is above max_cost $0.0020 (gpt-image-2 256x256 quality=low n=4); no request was sent.*"
            ]
        )
        assert "APIConnectionError" not in result.stdout.str()
    assert live_env.requests == 0
    assert not (project.path / CASSETTE).exists()


def test_missing_and_stale_cassettes_in_replay(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    openai_test(project)
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no cassette for test_images.py::test_logo; record it with `pytest --imagegen-record-mode=once test_images.py::test_logo` (estimated cost $0.00*)"
        ]
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    openai_test(project, prompt="A paper plane logo, blue")
    live_env.reset()
    for args in ([], [ONCE]):
        result = project.runpytest(*args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*stale cassette for test_images.py::test_logo*",
                "    prompt: 'A paper plane logo' → 'A paper plane logo, blue'",
                "  re-record it with `pytest --imagegen-record-mode=new_episodes test_images.py::test_logo` (estimated cost $0.00*)",
            ]
        )
    assert live_env.requests == 0
    result = project.runpytest("--imagegen-record-mode=new_episodes")
    result.assert_outcomes(passed=1)
    assert live_env.requests == 1
    text = (project.path / CASSETTE).read_text()
    assert "A paper plane logo, blue" in text
    assert text.count("prompt") == 1 + text.count("prompt_sha")  # the stale request is gone
    project.runpytest().assert_outcomes(passed=1)


def test_budget_covers_marked_tests(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    openai_test(project)
    result = project.runpytest(ONCE, "--imagegen-budget=0.0001")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*session budget $0.0001 would be exceeded*no request was sent*"])
    assert live_env.requests == 0
    project.runpytest(ONCE, "--imagegen-budget=1").assert_outcomes(passed=1)
    # no prompt_suites/ here: the ledger goes to the project directory, not a new suite dir
    assert not (project.path / "prompt_suites").exists()
    (line,) = (project.path / ".imagegen/ledger.jsonl").read_text().splitlines()
    assert json.loads(line)["nodeid"] == "test_images.py::test_logo"
    result = project.runpytest("--imagegen-ledger")
    result.stdout.fnmatch_lines(["*imagegen ledger: .imagegen/ledger.jsonl*", "total * 1 * 1 *"])


def test_block_network_only_blocks_unmarked_tests(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(
        project,
        """
        import os
        import openai

        def test_unmarked():
            client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                                   api_key=os.environ["IMAGEGEN_API_KEY"], max_retries=0)
            client.images.generate(model="gpt-image-2", prompt="x", size="256x256", quality="low")
        """,
    )
    result = project.runpytest("--imagegen-block-network")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_images.py::test_unmarked sent an images request (*/images/generations) without @pytest.mark.imagegen; add the marker*"
        ]
    )
    assert live_env.requests == 0
    project.runpytest().assert_outcomes(passed=1)  # opt-in: without the option it goes out
    assert live_env.requests == 1


def test_marker_is_registered_and_checked(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.imagegen(max_cost=None, cassette=None):*"])
    write_test(
        project,
        """
        import pytest

        @pytest.mark.imagegen(max_costs=1)
        def test_typo():
            pass
        """,
    )
    result = project.runpytest("--strict-markers")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.imagegen: unknown argument max_costs; allowed: max_cost, cassette"]
    )


def test_custom_cassette_name(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_test(
        project,
        OPENAI_TEST.format(prompt="p", n=1, max_cost=0.01).replace(
            "max_cost=0.01)", "max_cost=0.01, cassette='shared/logo')"
        ),
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    assert (project.path / "cassettes/shared/logo.yaml").is_file()


# ------------------------------------------------------------------ fixture

FIXTURE_TEST = """
import pytest

@pytest.mark.imagegen(max_cost=0.01)
def test_hero(imagegen):
    result = imagegen.generate("A lighthouse at dawn", size="256x256", quality="low", n=2)
    assert len(result.images) == 2
    assert result.images[0].image.size == (256, 256)
    assert result.revised_prompts == [None, None] or all(result.revised_prompts)
    assert 0 < result.actual_cost <= result.list_cost
    assert result.usage["output_tokens"] > 0
    print("REPLAYED", result.replayed)
    imagegen.assert_no_drift(result)
"""


def test_fixture_generates_records_and_checks_drift(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, FIXTURE_TEST)
    result = project.runpytest(ONCE, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*REPLAYED False*"])
    baseline = json.loads((project.path / "baselines/test_images.json").read_text())
    assert len(baseline["cases"]["test_hero"]["images"]) == 2
    live_env.stop()
    result = project.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*REPLAYED True*"])
    assert CANARY_KEY not in all_text(project.path)


def test_fixture_drift_fails_after_a_model_update(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, FIXTURE_TEST)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    live_env.seed = 5
    result = project.runpytest("--imagegen-record-mode=all")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "visual drift from the accepted baseline (baselines/test_images.json, key 'test_hero')*",
            "  image 1: phash * > 10*DRIFTED",
        ]
    )
    project.runpytest("--imagegen-update-baselines").assert_outcomes(passed=1)
    project.runpytest().assert_outcomes(passed=1)


def test_fixture_needs_no_marker_and_refuses_live_calls_without_a_key(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test(
        project,
        """
        def test_plain(imagegen):
            imagegen.generate("A kite", size="256x256", quality="low")
        """,
    )
    monkeypatch.delenv("IMAGEGEN_API_KEY")
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no API key*nothing was sent*"])
    assert live_env.requests == 0
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    assert (project.path / "cassettes/test_images/test_plain.imagegen.yaml").is_file()


@needs_xdist
def test_marked_tests_under_xdist(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    tests = "\n".join(
        f"""
@pytest.mark.imagegen(max_cost=0.01)
def test_{i}(imagegen):
    imagegen.assert_no_drift(imagegen.generate("picture {i}", size="256x256", quality="low"))
"""
        for i in range(4)
    )
    write_test(project, "import pytest\n" + tests)
    result = project.runpytest("-n", "2", ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=4)
    assert live_env.requests == 4
    baseline = json.loads((project.path / "baselines/test_images.json").read_text())
    assert sorted(baseline["cases"]) == ["test_0", "test_1", "test_2", "test_3"]
    live_env.reset()
    result = project.runpytest("-n", "2", "--imagegen-report=r.json")
    result.assert_outcomes(passed=4)
    assert live_env.requests == 0
    report = json.loads((project.path / "r.json").read_text())
    assert report["summary"]["replayed"] == 4
    assert result.stdout.str().count("- imagegen -") == 1


def test_public_api_is_exported() -> None:
    import pytest_imagegen

    for name in pytest_imagegen.__all__:
        assert getattr(pytest_imagegen, name).__doc__, name
    assert pytest_imagegen.FakeImagesServer is FakeImagesServer


def test_generate_outside_the_test_body_is_refused(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(
        project,
        """
        import pytest

        @pytest.fixture
        def picture(imagegen):
            return imagegen.generate("A kite", size="256x256", quality="low")

        def test_uses_fixture(picture):
            pass
        """,
    )
    result = project.runpytest(ONCE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*imagegen.generate() works only inside the test function*"])
    assert live_env.requests == 0
