"""SPEC §13 (judge building blocks): the request, reading answers, prices, the fake judge."""

from __future__ import annotations

import base64
import io

import httpx
import pytest

from pytest_imagegen import judge
from pytest_imagegen.costs import PriceTable
from pytest_imagegen.errors import PriceError
from pytest_imagegen.fakeserver import FakeImagesServer, encode_picture, render_picture

from .conftest import CANARY_KEY


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
