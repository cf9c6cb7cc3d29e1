"""SPEC §13 (judge building blocks): the request, reading answers, prices, the fake judge."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import pytest

from pytest_imagegen.api.errors import PriceError
from pytest_imagegen.checks import judge
from pytest_imagegen.fakeserver import FakeImagesServer, encode_picture, render_picture
from pytest_imagegen.money.prices import PriceTable

from .conftest import CANARY_KEY, write_suite


def _answer(content: object) -> dict[str, object]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.mark.parametrize(
    "content",
    [
        '{"score": 0.8, "reason": "a paper plane"}',
        'Sure! Here is my verdict: {"score": 0.8, "reason": "a paper plane"} Hope it helps.',
        '```json\n{"score": 0.8, "reason": "a paper plane"}\n```',
        [{"type": "text", "text": '{"score": 0.8, "reason": "a paper plane"}'}],
    ],
    ids=["json", "in-prose", "code-fence", "content-parts"],
)
def test_answers_are_read_in_every_shape(content: object) -> None:
    assert judge.parse_answer(_answer(content)) == judge.Verdict(0.8, "a paper plane")


@pytest.mark.parametrize(
    "payload",
    [{}, _answer("I like it"), _answer('{"score": 7}'), _answer('{"score": "high"}')],
    ids=["no-choices", "prose-only", "out-of-range", "not-a-number"],
)
def test_unusable_answers_are_refused(payload: object) -> None:
    with pytest.raises(judge.UnreadableAnswer):
        judge.parse_answer(payload)


def test_request_downscales_the_image_and_asks_for_json() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1536, 1024), (200, 30, 30)).save(buffer, "PNG")
    url = judge.data_url(buffer.getvalue())
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as small:
        assert small.size == (512, 341)
    body = judge.request_body("gpt-4.1-mini", "a red square", url)
    assert body["response_format"]["type"] == "json_schema"
    assert body["max_tokens"] == judge.MAX_OUTPUT_TOKENS
    assert body["messages"][1]["content"][1]["image_url"]["url"] == url


def test_judge_prices_are_known_and_estimated_high() -> None:
    prices = PriceTable.load()
    for model in ("gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini", "gpt-4o", "gpt-5-mini"):
        assert prices.chat_model(model).source
    chars = judge.prompt_chars("a paper plane")
    estimate = prices.judge_list_cost("gpt-4.1-mini", chars, 200)
    assert estimate == pytest.approx(((420 + -(-chars // 3)) * 0.40 + 200 * 1.60) / 1e6)
    with pytest.raises(PriceError, match="unknown judge model 'gpt-9'"):
        prices.chat_model("gpt-9")
    bad = prices.judge_actual_cost("gpt-4o", {"completion_tokens": -5}, estimate)
    assert bad.cost == estimate and bad.problem


def _render(server: FakeImagesServer, prompt: str) -> bytes:
    response = httpx.post(
        server.url + "/images/generations",
        json={"model": "gpt-image-2", "prompt": prompt, "size": "256x256", "quality": "low"},
        headers={"Authorization": f"Bearer {CANARY_KEY}"},
    )
    return base64.b64decode(response.json()["data"][0]["b64_json"])


def _ask(
    server: FakeImagesServer, image: bytes, rubric: str, key: str = CANARY_KEY
) -> httpx.Response:
    body = judge.request_body("gpt-4.1-mini", rubric, judge.data_url(image))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/chat/completions", json=body, headers=headers)


def test_fake_judge_scores_what_it_rendered(fake_server: FakeImagesServer) -> None:
    image = _render(fake_server, "Flat app icon of a paper plane, blue background")
    good = _ask(fake_server, image, "a flat icon of a paper plane")
    verdict = judge.parse_answer(good.json())
    assert verdict.score == 1.0 and "4 of 4" in verdict.reason
    assert judge.parse_answer(_ask(fake_server, image, "a red sports car").json()).score == 0.0
    usage = good.json()["usage"]
    prices = PriceTable.load()
    estimate = prices.judge_list_cost("gpt-4.1-mini", judge.prompt_chars("x" * 30), 200)
    assert 0 < prices.judge_actual_cost("gpt-4.1-mini", usage, estimate).cost <= estimate
    stranger = encode_picture(render_picture("never rendered by this server", 256, 256))
    assert judge.parse_answer(_ask(fake_server, stranger, "a paper plane").json()).score == 0.5
    assert fake_server.stats()["chat_requests"] == 3


def test_fake_judge_auth_errors_and_failure_injection(fake_server: FakeImagesServer) -> None:
    image = _render(fake_server, "A kite")
    assert _ask(fake_server, image, "a kite", key="").status_code == 401
    fake_server.inject({"status": 503})
    assert _ask(fake_server, image, "a kite").status_code == 503
    assert _ask(fake_server, image, "a kite").status_code == 200
    bad = httpx.post(
        fake_server.url + "/chat/completions",
        json={"model": "gpt-9", "messages": []},
        headers={"Authorization": "Bearer k"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "model_not_found"


# ------------------------------------------------------------- suites end to end

ICON = """
    defaults: {{size: 256x256, quality: low}}
    cases:
      - id: icon
        prompt: "Flat app icon of a paper plane, blue background"
        expect: {{judge: {judge}}}
"""
ONCE = "--imagegen-record-mode=once"


def _suite(pytester: pytest.Pytester, judge_setting: str) -> None:
    write_suite(pytester, "s", ICON.format(judge=judge_setting))


def _ledger(root: Path) -> list[dict[str, object]]:
    (path,) = root.rglob("ledger.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_judge_is_recorded_with_the_images_and_replayed_offline(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(project, '"a flat icon of a paper plane"')
    result = project.runpytest(ONCE, "--imagegen-report=r.json", "--imagegen-markdown=r.md")
    result.assert_outcomes(passed=1)
    assert live_env.requests == 1 and live_env.chat_requests == 1
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["judge"]["images"] == [
        {"score": 1.0, "reason": "shows 4 of 4 things the rubric names"}
    ]
    assert case["judge"]["model"] == "gpt-4.1-mini" and case["judge"]["min_score"] == 0.7
    markdown = (project.path / "r.md").read_text()
    assert "### Quality checks" in markdown and "1.0 (shows 4 of 4 things" in markdown
    prices = PriceTable.load()
    image = prices.list_cost("gpt-image-2", "256x256", "low", 1, "x" * 48).total
    estimate = prices.judge_list_cost(
        "gpt-4.1-mini", judge.prompt_chars("a flat icon of a paper plane"), 200
    )
    assert case["list_cost"] == pytest.approx(image + estimate)
    assert 0 < case["judge_cost"] <= estimate and case["accepted"] == 1
    kinds = [line["kind"] for line in _ledger(project.path)]
    assert kinds == ["image", "judge"]
    cassette = (project.path / "prompt_suites/cassettes/s/icon.yaml").read_text()
    assert "/chat/completions" in cassette and "data:image" not in cassette
    assert len(cassette) < 20_000  # the downscaled image is not stored twice
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")  # offline
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["actual_cost"] == 0 and case["judge"]["images"][0]["score"] == 1.0
    assert live_env.chat_requests == 1


def test_a_replayed_case_parses_its_cassette_once(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §1: one cassette object per case; replay, judge, OCR and drift read from it."""
    from pytest_imagegen.cassettes.cassette import CaseCassette

    write_suite(
        project,
        "s",
        ICON.format(judge='"a flat icon of a paper plane"')
        + """
      - id: plain
        prompt: "A paper plane over the sea"
""",
    )
    project.runpytest(ONCE).assert_outcomes(passed=2)
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")  # offline
    loads = []
    import yaml

    real = yaml.load

    def counting(stream: object, *args: object, **kwargs: object) -> object:
        text = stream if isinstance(stream, (str, bytes)) else b""
        if "interactions" in (text.decode() if isinstance(text, bytes) else text):
            loads.append(1)  # a cassette
        return real(stream, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(yaml, "load", counting)
    before = CaseCassette.parses
    project.runpytest("-p", "no:xdist").assert_outcomes(passed=2)
    assert CaseCassette.parses - before == 2  # one per replayed case, judged or not
    assert len(loads) == 2  # and nothing else parsed a cassette's YAML


def test_a_changed_rubric_is_stale_for_the_judge_only(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _suite(project, '"a flat icon of a paper plane"')
    project.runpytest(ONCE).assert_outcomes(passed=1)
    _suite(project, '"a red sports car"')
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "stale judge for prompt_suites/s.yaml::icon: judge changed: rubric 'a flat icon of "
            "a paper plane' → 'a red sports car'; re-judge with `pytest "
            "--imagegen-record-mode=new_episodes prompt_suites/s.yaml::icon` (cost $0.000*, "
            "no new image)",
        ]
    )
    result = project.runpytest("--imagegen-record-mode=new_episodes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["expect.judge: image 1 scored 0.00 < 0.70: shows 0 of 1 things*"])
    assert live_env.requests == 1 and live_env.chat_requests == 2  # no new image
    project.runpytest().assert_outcomes(failed=1)  # the new verdict was recorded: no call
    assert live_env.chat_requests == 2


def test_min_score_applies_to_recorded_scores_without_a_call(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _suite(project, '{rubric: "a flat icon of a paper plane on a green field", min_score: 0.5}')
    project.runpytest(ONCE).assert_outcomes(passed=1)  # 4 of 6 words: 0.67
    _suite(project, '{rubric: "a flat icon of a paper plane on a green field", min_score: 0.9}')
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["expect.judge: image 1 scored 0.67 < 0.90*"])
    assert live_env.chat_requests == 1


def test_budget_and_estimate_include_the_judge(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _suite(project, '"a flat icon of a paper plane"')
    prices = PriceTable.load()
    image = prices.list_cost("gpt-image-2", "256x256", "low", 1, "x" * 48).total
    judged = prices.judge_list_cost(
        "gpt-4.1-mini", judge.prompt_chars("a flat icon of a paper plane"), 200
    )
    estimate = project.runpytest("--imagegen-estimate")
    estimate.stdout.fnmatch_lines(
        [f"full live run (--imagegen-record-mode=all): ${image + judged:.4f}"]
    )
    result = project.runpytest(ONCE, f"--imagegen-budget={image + 0.00001}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*session budget*would be exceeded*"])
    assert live_env.requests == 1 and live_env.chat_requests == 0


@pytest.mark.parametrize(
    "setting, message",
    [
        ('{rubric: "x", min_score: 2}', "judge: min_score must be a number from 0 to 1, got 2"),
        ('{rubrik: "x"}', "judge: unknown key 'rubrik' (did you mean 'rubric'?)*"),
        ('{rubric: "x", model: gpt-9}', "judge: unknown judge model 'gpt-9'*"),
        ("[1]", "judge must be a rubric string or*"),
    ],
)
def test_bad_judge_settings_are_collection_errors(
    project: pytest.Pytester, setting: str, message: str
) -> None:
    _suite(project, setting)
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*case 'icon': field 'expect': {message}"])


# ------------------------------------------------------------------- Python API


def test_fixture_judge_and_read_text_record_and_replay(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rapidocr", reason="needs pip install '.[ocr]'")
    project.makepyfile(
        test_poster="""
        def test_poster(imagegen):
            result = imagegen.generate('A poster that says "GRAND OPENING"', size="256x256",
                                       quality="low")
            (verdict,) = imagegen.judge(result, "a poster that says grand opening")
            assert verdict.score == 1.0
            (lines,) = imagegen.read_text(result)
            assert [line.replace(" ", "") for line in lines] == ["GRANDOPENING"]
        """
    )
    project.runpytest(ONCE, "--imagegen-report=r.json").assert_outcomes(passed=1)
    assert live_env.requests == 1 and live_env.chat_requests == 1
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["judge"]["images"][0]["score"] == 1.0 and case["judge_cost"] > 0
    assert [[line.replace(" ", "") for line in lines] for lines in case["text"]] == [
        ["GRANDOPENING"]
    ]
    cassette = (project.path / "cassettes/test_poster/test_poster.imagegen.yaml").read_text()
    assert "/chat/completions" in cassette and len(cassette) < 20_000  # data URL in a sidecar
    kinds = [line["kind"] for line in _ledger(project.path)]
    assert kinds == ["image", "judge"]
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("IMAGEGEN_API_KEY")
    project.runpytest().assert_outcomes(passed=1)  # offline, no key, $0
    assert live_env.chat_requests == 1


def test_sdk_chat_calls_in_marked_tests_are_priced_and_recorded(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    image = _render(live_env, "Flat app icon of a paper plane")
    project.makepyfile(
        test_chat=f"""
        import os, openai, pytest
        from pytest_imagegen.checks import judge

        URL = judge.data_url(bytes.fromhex({image.hex()!r}))

        @pytest.mark.imagegen(max_cost=0.01)
        def test_judge_with_the_sdk():
            client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                                   api_key=os.environ["IMAGEGEN_API_KEY"], max_retries=0)
            answer = client.chat.completions.create(
                **judge.request_body("gpt-4.1-mini", "a paper plane icon", URL))
            assert judge.parse_answer(answer.model_dump()).score == 1.0

        @pytest.mark.imagegen(max_cost=0.00001)
        def test_too_expensive():
            client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                                   api_key=os.environ["IMAGEGEN_API_KEY"], max_retries=0)
            client.chat.completions.create(
                **judge.request_body("gpt-4o", "a paper plane icon", URL))
        """
    )
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*list cost $0.00* is above max_cost $0.0000*no request was sent*"]
    )
    assert live_env.chat_requests == 1
    cases = {c["nodeid"]: c for c in json.loads((project.path / "r.json").read_text())["cases"]}
    sdk = cases["test_chat.py::test_judge_with_the_sdk"]
    assert 0 < sdk["actual_cost"] <= sdk["list_cost"]
    project.runpytest("-k", "sdk").assert_outcomes(passed=1)  # replayed
    assert live_env.chat_requests == 1


def test_estimate_counts_a_stale_judge_at_the_judge_s_cost(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _suite(project, '"a flat icon of a paper plane"')
    project.runpytest(ONCE).assert_outcomes(passed=1)
    _suite(project, '"a red sports car"')
    prices = PriceTable.load()
    judged = prices.judge_list_cost("gpt-4.1-mini", judge.prompt_chars("a red sports car"), 200)
    result = project.runpytest("--imagegen-estimate")
    result.stdout.fnmatch_lines(
        [
            "prompt_suites/s.yaml::icon * cassette: judge stale",
            f"once recording (--imagegen-record-mode=once, 1 cases without a fresh cassette): "
            f"${judged:.4f}",
        ]
    )
    assert live_env.chat_requests == 1  # the estimate sent nothing
