"""SPEC §19: provider shapes (Gemini's generateContent, Azure OpenAI), the Responses API's
image tool and streamed answers, each recorded, replayed offline and refused over its
ceiling before anything is sent; matching across gateways; the fake server's
conformance to the openai SDK's types."""

from __future__ import annotations

import importlib.util
import json
import re
import textwrap
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, DEAD_URL, write_suite

#: image streaming arrived in the openai SDK after 1.76 (the oldest it supports)
needs_sdk_streaming = pytest.mark.skipif(
    importlib.util.find_spec("openai") is None
    or importlib.util.find_spec("openai.types.image_gen_stream_event") is None,
    reason="this openai SDK cannot stream images (images.generate(stream=True) is newer)",
)

ONCE = "--imagegen-record-mode=once"
LONG_B64 = re.compile(r"[A-Za-z0-9+/]{400,}")


def all_text(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def cassettes_text(root: Path) -> str:
    return "\n".join(p.read_text() for p in root.rglob("cassettes/**/*.yaml"))


def paths(server: FakeImagesServer) -> list[str]:
    return [entry["path"] for entry in server.stats()["log"]]


def write_test(pytester: pytest.Pytester, source: str, name: str = "test_images") -> None:
    pytester.makepyfile(**{name: textwrap.dedent(source)})


def offline(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server: FakeImagesServer,
            *args: str) -> pytest.RunResult:  # fmt: skip
    """Replay with the server stopped and every base URL on a dead port (network blocked)."""
    server.stop()
    monkeypatch.setenv("IMAGEGEN_BASE_URL", DEAD_URL)
    return pytester.runpytest(*args)


# ------------------------------------------------------------------------ Gemini


GEMINI_SUITE = """
    defaults:
      model: gemini-2.5-flash-image
    cases:
      - id: banana
        prompt: 'A banana on a desk under a sign that says "NANO"'
        size: 1344x768
        max_cost: 0.05
        expect: {size: 1344x768, count: 1}
      - id: pro-4k
        model: gemini-3-pro-image-preview
        prompt: "A banana at 4K"
        size: 4096x4096
        max_cost: 0.1
"""


def test_gemini_suite_case_records_replays_offline_and_refuses_over_its_ceiling(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(project, "gemini", GEMINI_SUITE)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*list cost $0.24* is above max_cost $0.10*no request was sent*"])
    # one request, on the Gemini route, with the key in x-goog-api-key (never Bearer)
    assert paths(live_env) == ["/v1beta/models/gemini-2.5-flash-image:generateContent"]
    (entry,) = live_env.stats()["log"]
    assert entry["body"]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert entry["body"]["contents"][0]["parts"][0]["text"].startswith("A banana on a desk")
    cassette = project.path / "prompt_suites/cassettes/gemini/banana.yaml"
    text = cassette.read_text()
    assert ":generateContent" in text and "inlineData" in text and "imagegen-sha256:" in text
    assert not LONG_B64.search(text), "the image must be a sidecar, not base64 in the YAML"
    assert CANARY_KEY not in all_text(project.path)
    report = json.loads((project.path / "r.json").read_text())
    banana = next(c for c in report["cases"] if c["nodeid"].endswith("::banana"))
    # priced from usageMetadata: 1290 image tokens at $30/1M plus the prompt's text tokens
    assert banana["actual_cost"] == pytest.approx(1290 * 30 / 1e6, abs=5e-5)
    assert banana["list_cost"] == pytest.approx(0.039, abs=1e-4)
    assert banana["actual_cost"] <= banana["list_cost"]
    replayed = offline(project, monkeypatch, live_env, "-k", "banana")
    replayed.assert_outcomes(passed=1, deselected=1)
    replayed.stdout.fnmatch_lines(["cases: 1  replayed: 1  recorded: 0 *"])


def test_gemini_suite_params_are_checked_as_gemini_settings(project: pytest.Pytester) -> None:
    write_suite(
        project,
        "bad",
        """
        cases:
          - id: a
            model: gemini-2.5-flash-image
            prompt: "x"
            size: 1024x1024
            params: {temprature: 0.5, imageConfig: {aspectRatio: "16:9"}}
          - id: b
            model: gemini-3.1-flash-image-preview
            prompt: "x"
            size: 512x512
          - id: c
            model: gemini-2.5-flash-image
            prompt: "x"
            image: nowhere.png
        """,
    )
    result = project.runpytest("--collect-only")
    out = result.stdout.str()
    assert "unknown Gemini generation setting 'temprature' (did you mean 'temperature'?)" in out
    assert "imageConfig asks for 16:9 but size 1024x1024 is 1:1" in out
    assert "512x512 cannot be used with gemini-3.1-flash-image-preview" in out
    assert "1376x768" in out  # the allowed sizes are listed
    assert "provider gemini cannot edit images yet" in out


GEMINI_HTTPX = """
import os
import httpx, pytest

ROOT = os.environ["IMAGEGEN_BASE_URL"].rsplit("/v1", 1)[0]
KEY = os.environ.get("IMAGEGEN_API_KEY", "no-key")

def call(model, body):
    with httpx.Client() as client:
        return client.post(f"{ROOT}/v1beta/models/{model}:generateContent", json=body,
                           headers={"x-goog-api-key": KEY})

@pytest.mark.imagegen(max_cost=0.05)
def test_banana():
    r = call("gemini-2.5-flash-image", {
        "contents": [{"parts": [{"text": "A banana kite"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"],
                             "imageConfig": {"aspectRatio": "3:2"}}})
    assert r.status_code == 200, r.text
    part = r.json()["candidates"][0]["content"]["parts"][-1]
    assert part["inlineData"]["mimeType"] == "image/png" and len(part["inlineData"]["data"]) > 1000

@pytest.mark.imagegen(max_cost=0.1)
def test_pro_4k():
    call("gemini-3-pro-image-preview", {
        "contents": [{"parts": [{"text": "A banana at 4K"}]}],
        "generationConfig": {"imageConfig": {"aspectRatio": "1:1", "imageSize": "4K"}}})
"""


def test_gemini_in_a_marked_test_through_httpx(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test(project, GEMINI_HTTPX)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*list cost $0.2400 is above max_cost $0.1000 (gemini-3-pro-image-preview 4096x4096*"]
    )
    assert paths(live_env) == ["/v1beta/models/gemini-2.5-flash-image:generateContent"]
    report = json.loads((project.path / "r.json").read_text())
    banana = next(c for c in report["cases"] if c["nodeid"].endswith("test_banana"))
    assert banana["model"] == "gemini-2.5-flash-image" and banana["size"] == "1248x832"
    assert banana["actual_cost"] == pytest.approx(1290 * 30 / 1e6, abs=5e-5)
    text = cassettes_text(project.path)
    assert "x-goog-api-key" not in text.lower() and not LONG_B64.search(text)
    assert CANARY_KEY not in all_text(project.path)
    replayed = offline(project, monkeypatch, live_env, "-k", "banana")
    replayed.assert_outcomes(passed=1, deselected=1)


# ------------------------------------------------------------------------- Azure


AZURE_TEST = """
import os
import openai, pytest

ENDPOINT = os.environ["IMAGEGEN_BASE_URL"].rsplit("/v1", 1)[0]
VERSION = os.environ.get("AZURE_VERSION", "2025-04-01-preview")

def client():
    return openai.AzureOpenAI(api_key=os.environ.get("IMAGEGEN_API_KEY", "no-key"),
                              azure_endpoint=ENDPOINT, api_version=VERSION, max_retries=0)

@pytest.mark.imagegen(max_cost=0.01)
def test_azure():
    r = client().images.generate(model="prod-image-deploy", prompt="An azure kite",
                                 size="1024x1024", quality="low")
    assert r.data[0].b64_json

@pytest.mark.imagegen(max_cost=0.01)
def test_azure_four():
    client().images.generate(model="prod-image-deploy", prompt="Four kites", n=4,
                             size="1024x1024", quality="low")
"""


def test_azure_openai_client_with_api_key_and_a_deployment(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_env.deployments["prod-image-deploy"] = "gpt-image-2"
    project.makeini(
        """
        [pytest]
        imagegen_backoff = 0.01
        imagegen_deployments = prod-image-deploy=gpt-image-2
        """
    )
    write_test(project, AZURE_TEST)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*list cost $0.02* is above max_cost $0.01*"])
    assert paths(live_env) == [
        "/openai/deployments/prod-image-deploy/images/generations?api-version=2025-04-01-preview"
    ]
    (entry,) = live_env.stats()["log"]
    assert entry["key_sha256"]  # the key came in api-key
    report = json.loads((project.path / "r.json").read_text())
    azure = next(c for c in report["cases"] if c["nodeid"].endswith("test_azure"))
    assert azure["model"] == "prod-image-deploy" and 0 < azure["actual_cost"] <= 0.006
    text = cassettes_text(project.path)
    assert "api-key" not in text.lower() and CANARY_KEY not in all_text(project.path)
    monkeypatch.setenv("AZURE_VERSION", "2026-01-01")  # api-version is not matched
    replayed = offline(project, monkeypatch, live_env, "-k", "test_azure and not four")
    replayed.assert_outcomes(passed=1, deselected=1)


def test_azure_suite_case_sends_to_the_deployment_with_api_key(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_env.deployments["prod-image-deploy"] = "gpt-image-2"
    project.makeini(
        """
        [pytest]
        imagegen_backoff = 0.01
        imagegen_deployments = prod-image-deploy=gpt-image-2
        imagegen_azure_api_version = 2025-04-01-preview
        """
    )
    write_suite(
        project,
        "azure",
        """
        cases:
          - {id: kite, model: prod-image-deploy, prompt: "An azure kite", size: 1024x1024,
             quality: low, max_cost: 0.01}
          - {id: four, model: prod-image-deploy, prompt: "Four", size: 1024x1024,
             quality: low, n: 4, max_cost: 0.01}
        """,
    )
    result = project.runpytest(ONCE)
    result.assert_outcomes(passed=1, failed=1)
    assert paths(live_env) == [
        "/openai/deployments/prod-image-deploy/images/generations?api-version=2025-04-01-preview"
    ]
    assert CANARY_KEY not in all_text(project.path)
    offline(project, monkeypatch, live_env, "-k", "kite").assert_outcomes(passed=1, deselected=1)


def test_an_unmapped_deployment_says_how_to_map_it(project: pytest.Pytester) -> None:
    write_suite(
        project,
        "azure",
        """
        provider: azure
        cases:
          - {id: kite, model: prod-image-deploy, prompt: "A kite"}
        """,
    )
    result = project.runpytest("--collect-only")
    result.stdout.fnmatch_lines(
        ["*unknown model 'prod-image-deploy'*imagegen_deployments = prod-image-deploy=gpt-image-2*"]
    )


# -------------------------------------------------------- gateways and prefixes


PREFIX_TEST = """
import os
import httpx, pytest

URL = os.environ["IMAGEGEN_BASE_URL"]
KEY = os.environ.get("IMAGEGEN_API_KEY", "no-key")

@pytest.mark.imagegen(max_cost=0.01)
def test_logo():
    base = os.environ.get("GATEWAY", URL)
    r = httpx.post(base + "/images/generations", headers={"Authorization": "Bearer " + KEY},
                   json={"model": "gpt-image-2", "prompt": "A logo", "size": "256x256",
                         "quality": "low"})
    assert r.status_code == 200 and r.json()["data"][0]["b64_json"]
"""


def test_a_gateway_path_prefix_does_not_invalidate_a_marked_cassette(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test(project, PREFIX_TEST)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    monkeypatch.setenv("GATEWAY", "http://127.0.0.1:9/proxy/openai/v1")
    result = offline(project, monkeypatch, live_env)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cases: 1  replayed: 1 *"])


# ------------------------------------------------------------- Responses tool


RESPONSES_TEST = """
import os
import openai, pytest

def client():
    return openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"], max_retries=0,
                         api_key=os.environ.get("IMAGEGEN_API_KEY", "no-key"))

@pytest.mark.imagegen(max_cost=0.05)
def test_tool():
    r = client().responses.create(model="gpt-4.1-mini", input="Draw a red kite",
        tools=[{"type": "image_generation", "model": "gpt-image-2", "size": "1024x1024",
                "quality": "low"}])
    calls = [o for o in r.output if o.type == "image_generation_call"]
    assert len(calls) == 1 and len(calls[0].result) > 1000

@pytest.mark.imagegen(max_cost=0.05)
def test_tool_high():
    client().responses.create(model="gpt-4.1-mini", input="Draw a kite in detail",
        tools=[{"type": "image_generation", "size": "1024x1024", "quality": "high"}])
"""


def test_responses_image_tool_through_the_openai_sdk(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test(project, RESPONSES_TEST)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*list cost $0.2* is above max_cost $0.0500 (gpt-4.1-mini with the image_generation tool*"]
    )
    assert paths(live_env) == ["/v1/responses"]
    report = json.loads((project.path / "r.json").read_text())
    tool = next(c for c in report["cases"] if c["nodeid"].endswith("test_tool"))
    assert tool["model"] == "gpt-image-2" and tool["size"] == "1024x1024"
    # booked: the mainline model's usage plus the tool's image tokens (below the list)
    assert 0.004 < tool["actual_cost"] < tool["list_cost"] < 0.05
    text = cassettes_text(project.path)
    assert "image_generation_call" in text and "imagegen-sha256:" in text
    assert not LONG_B64.search(text)
    replayed = offline(project, monkeypatch, live_env, "-k", "test_tool and not high")
    replayed.assert_outcomes(passed=1, deselected=1)


# ------------------------------------------------------------------ streaming


STREAM_TEST = """
import asyncio, json, os
import openai, pytest

URL, KEY = os.environ["IMAGEGEN_BASE_URL"], os.environ.get("IMAGEGEN_API_KEY", "no-key")
ARGS = dict(model="gpt-image-2", size="1024x1024", quality="low", stream=True)

def events(stream):
    return [(e.type, e.b64_json[:40]) for e in stream]

@pytest.mark.imagegen(max_cost=0.02)
def test_stream():
    client = openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0)
    got = events(client.images.generate(prompt="A streamed kite", partial_images=2, **ARGS))
    assert [t for t, _ in got] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"]
    with open("events.json", "a") as f:
        f.write(json.dumps(got) + "\\n")

@pytest.mark.imagegen(max_cost=0.02)
def test_stream_async():
    async def main():
        client = openai.AsyncOpenAI(base_url=URL, api_key=KEY, max_retries=0)
        stream = await client.images.generate(prompt="An async kite", partial_images=1, **ARGS)
        return [e.type async for e in stream]
    assert asyncio.run(main())[-1] == "image_generation.completed"

@pytest.mark.imagegen(max_cost=0.01)
def test_stream_three_partials():
    client = openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0)
    events(client.images.generate(prompt="Three partials", partial_images=3, **ARGS))
"""


@needs_sdk_streaming
def test_streamed_generation_through_the_sdk(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_test(project, STREAM_TEST)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    # three partial images: $0.006 + 3 x 100 tokens x $30/1M = $0.015 > $0.01, unsent
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*list cost $0.0150 is above max_cost $0.0100*"])
    assert live_env.requests == 2
    report = json.loads((project.path / "r.json").read_text())
    stream = next(c for c in report["cases"] if c["nodeid"].endswith("::test_stream"))
    # $0.006 and 2 x 100 partial-image tokens at $30/1M, and the prompt's text tokens
    assert stream["list_cost"] == pytest.approx(0.012, abs=1e-4)
    # booked from the completed event's usage: the image's tokens and 2 x 100 partial tokens
    usage_tokens = 189 + 200
    assert stream["actual_cost"] == pytest.approx(usage_tokens * 30 / 1e6 + 5 * 3 / 1e6, abs=2e-4)
    cassette = project.path / "cassettes/test_images/test_stream.imagegen.yaml"
    text = cassette.read_text()
    assert "image_generation.completed" in text and not LONG_B64.search(text)
    assert text.count("imagegen-sha256:") >= 3  # two partial images and the final one
    replayed = offline(project, monkeypatch, live_env, "-k", "not three")
    replayed.assert_outcomes(passed=2, deselected=1)
    first, again = (project.path / "events.json").read_text().splitlines()
    assert json.loads(first) == json.loads(again)  # the same event stream, offline


@needs_sdk_streaming
def test_a_stream_is_held_to_its_ceiling_after_the_call(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_test(project, STREAM_TEST)
    usage = {"input_tokens": 5, "output_tokens": 996, "total_tokens": 1001,
             "input_tokens_details": {"text_tokens": 5, "image_tokens": 0}}  # fmt: skip
    live_env.inject({"usage": usage})
    result = project.runpytest(ONCE, "-k", "test_stream and not async and not three")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(
        ["*actual cost $0.0299 (from the response's usage) is above max_cost $0.0200*"]
    )
    # the money is spent: the event stream is kept, its images as sidecars
    text = (project.path / "cassettes/test_images/test_stream.imagegen.yaml").read_text()
    assert "event: image_generation.completed" in text and not LONG_B64.search(text)


STREAM_SUITE = """
    defaults: {model: gpt-image-2, size: 1024x1024, quality: low}
    cases:
      - id: streamed
        prompt: "A streamed lighthouse"
        params: {stream: true, partial_images: 1}
        max_cost: 0.01
        expect: {count: 1, size: 1024x1024}
      - id: three
        prompt: "Three partial images"
        params: {stream: true, partial_images: 3}
        max_cost: 0.01
"""


def test_streamed_suite_case(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(project, "stream", STREAM_SUITE)
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*list cost $0.0150 is above max_cost $0.0100*"])
    assert live_env.requests == 1
    report = json.loads((project.path / "r.json").read_text())
    case = next(c for c in report["cases"] if c["nodeid"].endswith("::streamed"))
    assert case["list_cost"] == pytest.approx(0.009, abs=1e-4)
    assert case["actual_cost"] == pytest.approx((189 + 100) * 30 / 1e6 + 6 * 5 / 1e6, abs=2e-4)
    text = (project.path / "prompt_suites/cassettes/stream/streamed.yaml").read_text()
    assert "event: image_generation.partial_image" in text and not LONG_B64.search(text)
    replayed = offline(project, monkeypatch, live_env, "-k", "streamed")
    replayed.assert_outcomes(passed=1, deselected=1)


# ------------------------------------------------------- cross-model right-size


def test_a_right_sizing_group_ranks_models_of_two_providers(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "compare",
        """
        cases:
          - id: hero
            prompt: "A product shot of a ceramic mug"
            size: 1024x1024
            quality: low
            matrix:
              model: [gpt-image-2, gemini-3.1-flash-image-preview]
            expect: {count: 1, size: 1024x1024}
        """,
    )
    result = project.runpytest(ONCE, "--imagegen-right-size", "--imagegen-report=r.json")
    result.assert_outcomes(passed=2)
    assert sorted(paths(live_env)) == [
        "/v1/images/generations",
        "/v1beta/models/gemini-3.1-flash-image-preview:generateContent",
    ]
    result.stdout.fnmatch_lines(
        [
            "prompt_suites/compare.yaml::hero  (passes at accept rate >= 100%)",
            "  * model=gpt-image-2 * accepted 1/1 (100%)  per accepted $0.00*",
            "  * model=gemini-3.1-flash-image-preview * accepted 1/1 (100%)  per accepted $0.05*",
            "  recommended: model=gpt-image-2; saves $0.05* per accepted image (*%) against "
            "model=gemini-3.1-flash-image-preview",
        ]
    )


# --------------------------------------------------------------- the fake server


def test_the_fake_server_conforms_to_the_sdk_types_and_the_apis_refusals(
    fake_server: FakeImagesServer,
) -> None:
    import base64
    import io

    import httpx
    from openai.types import ImagesResponse
    from openai.types.responses import Response
    from PIL import Image

    url = fake_server.url
    key = {"Authorization": "Bearer k"}
    base = {"model": "gpt-image-2", "prompt": "A kite", "size": "256x256", "quality": "low"}

    def post(body: dict[str, object], path: str = "/images/generations") -> httpx.Response:
        return httpx.post(url + path, json=body, headers=key, timeout=30)

    accepted = [
        {},
        {"output_format": "jpeg", "output_compression": 50},
        {"background": "transparent", "output_format": "png"},
        {"background": "auto", "moderation": "low", "safety_identifier": "user-1"},
        {"output_format": "webp", "n": 2},
    ]
    for extra in accepted:
        r = post({**base, **extra})
        assert r.status_code == 200, (extra, r.text)
        ImagesResponse.model_validate(r.json(), strict=True)
    for model in ("dall-e-3", "dall-e-2"):
        size = "1024x1024" if model == "dall-e-3" else "256x256"
        for fmt in ("url", "b64_json"):
            r = post({"model": model, "prompt": "A kite", "size": size, "response_format": fmt})
            assert r.status_code == 200, r.text
            ImagesResponse.model_validate(r.json(), strict=True)
    transparent = post({**base, "background": "transparent"}).json()
    assert transparent["background"] == "transparent"
    with Image.open(io.BytesIO(base64.b64decode(transparent["data"][0]["b64_json"]))) as image:
        assert image.mode == "RGBA" and image.getextrema()[3][0] == 0  # really see-through
    refused = {
        "response_format": {"response_format": "url"},
        "output_compression": {"output_compression": 50},  # png
        "background": {"background": "transparent", "output_format": "jpeg"},
        "partial_images": {"partial_images": 2},  # without stream
        "input_fidelity": {"input_fidelity": "high"},  # edits only
    }
    for param, extra in refused.items():
        r = post({**base, **extra})
        assert r.status_code == 400, (param, r.text)
        assert r.json()["error"]["param"] == param
    r = post({"model": "dall-e-3", "prompt": "x", "size": "1024x1024", "output_format": "png"})
    assert r.status_code == 400
    png = io.BytesIO()
    Image.new("RGB", (256, 256), "white").save(png, "PNG")
    edit = httpx.post(
        url + "/images/edits",
        data={"model": "gpt-image-1.5", "prompt": "Add a kite", "input_fidelity": "high",
              "size": "1024x1024", "quality": "low"},
        files=[("image[]", ("in.png", png.getvalue(), "image/png"))],
        headers=key,
        timeout=30,
    )  # fmt: skip
    assert edit.status_code == 200, edit.text
    ImagesResponse.model_validate(edit.json(), strict=True)
    tool = {"type": "image_generation", "size": "1024x1024", "quality": "low"}
    r = httpx.post(url + "/responses", headers=key, timeout=30,
                   json={"model": "gpt-4.1-mini", "input": "A kite", "tools": [tool]})  # fmt: skip
    assert r.status_code == 200, r.text
    from openai.types.responses import response_output_item

    if hasattr(response_output_item, "ImageGenerationCall"):  # SDKs that know the tool's output
        Response.model_validate(r.json(), strict=True)


@needs_sdk_streaming
def test_the_fake_servers_streams_validate_as_the_sdks_event_types(
    fake_server: FakeImagesServer,
) -> None:
    import io

    import httpx
    from openai.types.image_edit_completed_event import ImageEditCompletedEvent
    from openai.types.image_edit_partial_image_event import ImageEditPartialImageEvent
    from openai.types.image_gen_completed_event import ImageGenCompletedEvent
    from openai.types.image_gen_partial_image_event import ImageGenPartialImageEvent
    from PIL import Image

    from pytest_imagegen.api.providers import sse

    url = fake_server.url
    key = {"Authorization": "Bearer k"}
    base = {"model": "gpt-image-2", "prompt": "A kite", "size": "256x256", "quality": "low"}

    def post(body: dict[str, object], path: str = "/images/generations") -> httpx.Response:
        return httpx.post(url + path, json=body, headers=key, timeout=30)

    # streams: every event validates as the SDK's event types
    r = post({**base, "stream": True, "partial_images": 2})
    assert r.headers["content-type"].startswith("text/event-stream")
    kinds = {"image_generation.partial_image": ImageGenPartialImageEvent,
             "image_generation.completed": ImageGenCompletedEvent,
             "image_edit.partial_image": ImageEditPartialImageEvent,
             "image_edit.completed": ImageEditCompletedEvent}  # fmt: skip
    names = []
    for name, data in sse.events(r.text):
        kinds[name].model_validate(data, strict=True)
        names.append(name)
    assert names == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    png = io.BytesIO()
    Image.new("RGB", (256, 256), "white").save(png, "PNG")
    edit = httpx.post(
        url + "/images/edits",
        data={"model": "gpt-image-1.5", "prompt": "Add a kite", "input_fidelity": "high",
              "stream": "true", "partial_images": "1", "size": "1024x1024", "quality": "low"},
        files=[("image[]", ("in.png", png.getvalue(), "image/png"))],
        headers=key,
        timeout=30,
    )  # fmt: skip
    assert edit.status_code == 200, edit.text
    edit_names = [name for name, data in sse.events(edit.text)
                  if kinds[name].model_validate(data, strict=True)]  # fmt: skip
    assert edit_names == ["image_edit.partial_image", "image_edit.completed"]


def test_the_fake_gemini_route_answers_googles_shapes(fake_server: FakeImagesServer) -> None:
    import httpx

    root = fake_server.url.rsplit("/v1", 1)[0]

    def post(model: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{root}/v1beta/models/{model}:generateContent", json=body,
                          headers={"x-goog-api-key": "k"} if headers is None else headers,
                          timeout=30)  # fmt: skip

    prompt = {"contents": [{"parts": [{"text": "A banana"}]}]}
    ok = post("gemini-3.1-flash-image-preview",
              {**prompt, "generationConfig": {"imageConfig": {"aspectRatio": "16:9"}}})  # fmt: skip
    assert ok.status_code == 200, ok.text
    usage = ok.json()["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1120 + 8  # the image and the short text part
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    missing = post("gemini-2.5-flash-image", prompt, headers={})
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    unknown = post("gpt-image-2", prompt)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    bad = post("gemini-2.5-flash-image",
               {**prompt, "generationConfig": {"imageConfig": {"imageSize": "2K"}}})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    fake_server.inject({"status": 429})
    limited = post("gemini-2.5-flash-image", prompt)
    assert limited.json()["error"] == {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                       "message": limited.json()["error"]["message"]}  # fmt: skip
    assert httpx.post(fake_server.url + "/images/generations", headers={"Authorization": "Bearer k"},
                      json={"model": "gemini-2.5-flash-image", "prompt": "x"}).status_code == 400  # fmt: skip


# ------------------------------------------------------------------ pure parts


def test_routes_and_what_matching_compares() -> None:
    from pytest_imagegen.api.providers import classify, match_path

    azure = classify("POST", "/openai/deployments/prod%20x/images/edits")
    assert azure is not None and (azure.provider, azure.kind, azure.model) == (
        "azure", "image", "prod x")  # fmt: skip
    gemini = classify("POST", "/gw/v1beta/models/gemini-2.5-flash-image:generateContent")
    assert gemini is not None and gemini.model == "gemini-2.5-flash-image"
    assert gemini.fake_path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    responses = classify("POST", "/v1/responses")
    assert responses is not None and responses.kind == "responses"
    assert classify("GET", "/v1/images/generations") is None
    assert classify("POST", "/v1/models") is None
    assert match_path("/proxy/openai/v1/images/generations") == "/images/generations"
    assert match_path("/v1/images/generations") == "/images/generations"
    assert match_path("/other") == "/other"


def test_gemini_usage_is_priced_by_modality() -> None:
    from pytest_imagegen.money.prices import PriceTable
    from pytest_imagegen.money.usage import usage_tokens

    usage = {
        "promptTokenCount": 12, "candidatesTokenCount": 1298, "thoughtsTokenCount": 40,
        "totalTokenCount": 1350,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290},
                                    {"modality": "TEXT", "tokenCount": 8}],
    }  # fmt: skip
    tokens = usage_tokens(usage)
    assert (tokens.text_in, tokens.image_out, tokens.text_out) == (12, 1290, 48)
    assert not tokens.incomplete
    table = PriceTable.load()
    cost = table.price_usage("gemini-2.5-flash-image", usage, 0.039)
    assert cost.basis == "usage"
    assert cost.cost == pytest.approx((12 * 0.30 + 1290 * 30 + 48 * 2.5) / 1e6, abs=1e-6)
    short = table.price_usage("gemini-2.5-flash-image", {"promptTokenCount": 5}, 0.039)
    assert short.cost == 0.039  # no output count: the list cost, never less
    assert table.provider_of("gemini-3-pro-image") == "gemini"
    assert table.provider_of("gpt-image-2") == "openai"


def test_azure_takes_the_openai_parameters() -> None:
    from pytest_imagegen.api.params import problems

    assert problems("azure", "generations", {"background": "transparent"}, "gpt-image-2") == []
    ((key, message),) = problems("azure", "generations", {"response_format": "url"}, "gpt-image-2")
    assert key == "response_format" and "always return base64" in message
    assert problems("gemini", "generations", {"temperature": 3}, "gemini-2.5-flash-image") == [
        ("temperature", "temperature must be a number from 0 to 2, got 3")
    ]
    assert (
        "must include IMAGE"
        in problems(
            "gemini", "generations", {"responseModalities": ["TEXT"]}, "gemini-2.5-flash-image"
        )[0][1]
    )


FIXTURE_GEMINI = """
def test_banana(imagegen):
    result = imagegen.generate('A banana that says "HI"', model="gemini-3.1-flash-image-preview",
                               size="1376x768", quality="low")
    assert len(result.images) == 1 and result.images[0].image.size == (1376, 768)
    assert result.request.get("quality") is None  # Gemini takes no quality
"""


@pytest.mark.parametrize("fake", [False, True], ids=["live-env", "fake-server-option"])
def test_the_fixture_and_the_fake_server_option_speak_gemini(
    project: pytest.Pytester, fake_server: FakeImagesServer, monkeypatch: pytest.MonkeyPatch,
    fake: bool,
) -> None:  # fmt: skip
    write_test(project, FIXTURE_GEMINI)
    if fake:  # every provider route of the session goes to the built-in fake server
        write_suite(project, "g", "cases:\n  - {id: g, model: gemini-2.5-flash-image, prompt: x}\n")
        result = project.runpytest(ONCE, "--imagegen-fake-server")
        result.assert_outcomes(passed=2)
        assert fake_server.requests == 0
    else:
        monkeypatch.setenv("IMAGEGEN_BASE_URL", fake_server.url)
        monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
        project.runpytest(ONCE).assert_outcomes(passed=1)
        assert paths(fake_server) == [
            "/v1beta/models/gemini-3.1-flash-image-preview:generateContent"
        ]
    offline(project, monkeypatch, fake_server).assert_outcomes(passed=2 if fake else 1)
