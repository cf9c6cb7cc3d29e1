"""SPEC §15 (suites): edit cases with input images and masks, recorded and replayed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from pytest_imagegen.api.shape import input_image_tokens
from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.prices import PriceTable

from .conftest import CANARY_KEY, write_suite

ONCE = "--imagegen-record-mode=once"
EDIT = """
    cases:
      - id: shoe
        prompt: "The same red shoe on a sunny beach"
        image: inputs/shoe.png
        mask: inputs/mask.png
        size: 256x256
        quality: low
"""


def _png(path: Path, size: tuple[int, int], color: tuple[int, ...], mode: str = "RGB") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def edit_project(project: pytest.Pytester) -> pytest.Pytester:
    inputs = project.path / "prompt_suites/inputs"
    _png(inputs / "shoe.png", (256, 256), (200, 40, 40))
    _png(inputs / "mask.png", (256, 256), (0, 0, 0, 0), "RGBA")
    write_suite(project, "s", EDIT)
    return project


def test_edit_is_multipart_recorded_as_a_description_and_replayed_offline(
    edit_project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = edit_project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (entry,) = live_env.log
    assert entry["path"] == "/v1/images/edits"
    assert [name for name, _ in entry["body"]["files"]] == ["image[]", "mask"]
    assert entry["body"]["prompt"] == "The same red shoe on a sunny beach"
    cassette = edit_project.path / "prompt_suites/cassettes/s/shoe.yaml"
    raw = cassette.read_bytes()
    assert b"\x89PNG" not in raw and b"image[]" in raw and len(raw) < 5000
    (case,) = json.loads((edit_project.path / "r.json").read_text())["cases"]
    prices = PriceTable.load()
    base = prices.list_cost("gpt-image-2", "256x256", "low", 1, "x" * 34).total
    inputs = 2 * input_image_tokens(256, 256) * 8.0 / 1e6  # image + mask at $8 / 1M
    assert case["list_cost"] == pytest.approx(base + inputs, abs=2e-6)
    assert 0 < case["actual_cost"] <= case["list_cost"]
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    edit_project.runpytest().assert_outcomes(passed=1)  # replay: offline, $0
    assert live_env.requests == 1


def test_a_changed_input_image_is_stale_and_named(
    edit_project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    edit_project.runpytest(ONCE).assert_outcomes(passed=1)
    _png(edit_project.path / "prompt_suites/inputs/shoe.png", (256, 256), (40, 40, 200))
    result = edit_project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["    image 'inputs/shoe.png' changed since the cassette was recorded"]
    )
    result = edit_project.runpytest("--imagegen-record-mode=new_episodes")
    result.assert_outcomes(failed=1)  # re-recorded; a new input, a new look: drift says so
    result.stdout.fnmatch_lines(["visual drift from the accepted baseline*"])
    assert live_env.requests == 2
    edit_project.runpytest("--imagegen-update-baselines").assert_outcomes(passed=1)
    edit_project.runpytest().assert_outcomes(passed=1)
    assert live_env.requests == 2


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("image: inputs/shoe.png", "image: inputs/none.png",
         "field 'image': 'inputs/none.png': no such file*"),
        ("mask: inputs/mask.png", "mask: inputs/small.png",
         "field 'mask': 'inputs/small.png' is 128x128 but the first image is 256x256*"),
        ("mask: inputs/mask.png", "mask: inputs/flat.png",
         "field 'mask': 'inputs/flat.png' has no alpha channel*"),
        ("image: inputs/shoe.png", "image: inputs/text.png",
         "field 'image': 'inputs/text.png' is not an image Pillow can open*"),
        ("image: inputs/shoe.png", "image: inputs/shoe.png\n    images: [inputs/shoe.png]",
         "field 'images': give `image: path` or `images: [[]paths]`, not both"),
    ],
    ids=["missing", "mask-size", "mask-alpha", "not-an-image", "image-and-images"],
)  # fmt: skip
def test_input_files_are_checked_at_collection(
    edit_project: pytest.Pytester, live_env: FakeImagesServer, old: str, new: str, message: str
) -> None:
    inputs = edit_project.path / "prompt_suites/inputs"
    _png(inputs / "small.png", (128, 128), (0, 0, 0, 0), "RGBA")
    _png(inputs / "flat.png", (256, 256), (0, 0, 0))
    (inputs / "text.png").write_text("not a picture")
    suite = edit_project.path / "prompt_suites/s.yaml"
    suite.write_text(suite.read_text().replace(old, new))
    result = edit_project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"prompt_suites/s.yaml:*: case 'shoe': {message}"])
    assert live_env.requests == 0


def test_image_matrix_and_quality_checks_apply_to_edits(
    edit_project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    _png(edit_project.path / "prompt_suites/inputs/boot.png", (256, 256), (20, 120, 20))
    write_suite(
        edit_project,
        "s",
        """
        cases:
          - id: product
            prompt: 'The product on a shelf, label "SALE"'
            size: 256x256
            quality: low
            matrix: {image: [inputs/shoe.png, inputs/boot.png]}
        """,
    )
    result = edit_project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=2)
    nodeids = sorted(
        c["nodeid"] for c in json.loads((edit_project.path / "r.json").read_text())["cases"]
    )
    assert nodeids == [
        "prompt_suites/s.yaml::product[image=inputs/boot.png]",
        "prompt_suites/s.yaml::product[image=inputs/shoe.png]",
    ]
    shas = {e["body"]["files"][0][1] for e in live_env.log}
    assert len(shas) == 2  # each variant sent its own input image
    edit_project.runpytest().assert_outcomes(passed=2)  # replays, drift checked


def test_fake_server_answers_edit_errors_like_the_api(fake_server: FakeImagesServer) -> None:
    from PIL import Image

    def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size).save(buffer, "PNG")
        return buffer.getvalue()

    url, headers = fake_server.url + "/images/edits", {"Authorization": f"Bearer {CANARY_KEY}"}
    data = {"model": "gpt-image-2", "prompt": "p", "size": "256x256"}
    missing = httpx.post(url, data=data, headers=headers, files=[("other", ("x.txt", b"x"))])
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "image"
    wrong = httpx.post(
        url,
        data=data,
        headers=headers,
        files=[("image[]", ("a.png", png((256, 256)))), ("mask", ("m.png", png((64, 64), "RGBA")))],
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "mask"
    ok = httpx.post(
        url, data=data, headers=headers, files=[("image[]", ("a.png", png((256, 256))))]
    )
    usage = ok.json()["usage"]
    assert ok.status_code == 200 and usage["input_tokens_details"]["image_tokens"] > 0


# ------------------------------------------------------------------- Python API


def test_sdk_and_fixture_edits_are_guarded_recorded_and_replayed(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(project.path / "shoe.png", (256, 256), (200, 40, 40))
    _png(project.path / "mask.png", (256, 256), (0, 0, 0, 0), "RGBA")
    project.makepyfile(
        test_edit="""
        import os, openai, pytest

        def client():
            return openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                                 api_key=os.environ.get("IMAGEGEN_API_KEY", "none"),
                                 max_retries=0)

        @pytest.mark.imagegen(max_cost=0.01)
        def test_sdk_edit():
            with open("shoe.png", "rb") as image, open("mask.png", "rb") as mask:
                r = client().images.edit(model="gpt-image-2", image=image, mask=mask,
                                         prompt="The shoe on a beach", size="256x256",
                                         quality="low")
            assert r.data[0].b64_json

        @pytest.mark.imagegen(max_cost=0.001)
        def test_sdk_edit_over_the_ceiling():
            with open("shoe.png", "rb") as image:
                client().images.edit(model="gpt-image-2", image=image, prompt="p",
                                     size="256x256", quality="low")

        def test_fixture_edit(imagegen):
            result = imagegen.edit("The shoe in a studio", image="shoe.png", mask="mask.png",
                                   size="256x256", quality="low")
            assert len(result.images) == 1 and result.list_cost > 0.001

        @pytest.mark.imagegen
        def test_variations_are_refused():
            with open("shoe.png", "rb") as image:
                client().images.create_variation(image=image, model="dall-e-2")
        """
    )
    result = project.runpytest(ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*list cost $0.00* is above max_cost $0.0010*no request was sent*",
            "*image variations (dall-e-2) are not supported by pytest-imagegen*",
        ]
    )
    assert live_env.requests == 2 and {e["path"] for e in live_env.log} == {"/v1/images/edits"}
    cassette = project.path / "cassettes/test_edit/test_sdk_edit.imagegen.yaml"
    assert b"\x89PNG" not in cassette.read_bytes() and b"image[]" in cassette.read_bytes()
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("IMAGEGEN_API_KEY")
    project.runpytest("-k", "sdk_edit and not ceiling or fixture").assert_outcomes(passed=2)
    assert live_env.requests == 2  # replayed offline


def test_async_sdk_edit_is_recorded_and_replayed(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(project.path / "shoe.png", (256, 256), (200, 40, 40))
    project.makepyfile(
        test_async_edit="""
        import asyncio, os, openai, pytest

        @pytest.mark.imagegen(max_cost=0.01)
        def test_async_edit():
            async def main():
                client = openai.AsyncOpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                                            api_key=os.environ.get("IMAGEGEN_API_KEY", "none"),
                                            max_retries=0)
                with open("shoe.png", "rb") as image:
                    return await client.images.edit(model="gpt-image-2", image=image,
                                                    prompt="On a beach", size="256x256",
                                                    quality="low")
            assert asyncio.run(main()).data[0].b64_json
        """
    )
    project.runpytest(ONCE).assert_outcomes(passed=1)
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    project.runpytest().assert_outcomes(passed=1)
    assert live_env.requests == 1
