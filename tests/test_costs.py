"""SPEC §5 price rules: per-image x n + prompt tokens, auto priced high, custom sizes by area."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_imagegen.api.errors import PriceError
from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.prices import PriceTable, format_usd

from .conftest import SMALL_CASE, write_suite

PRICES = PriceTable.load()


@pytest.mark.parametrize(
    "size, quality, price",
    [
        ("1024x1024", "low", 0.006),
        ("1024x1024", "medium", 0.053),
        ("1024x1024", "high", 0.211),
        ("1024x1536", "low", 0.005),
        ("1536x1024", "medium", 0.041),
        ("1536x1024", "high", 0.165),
        ("1024x1024", "auto", 0.211),  # auto priced at the highest quality
        ("1024x1024", None, 0.211),
        ("auto", "low", 0.006),  # auto size: the most expensive size
        ("2048x2048", "low", 0.024),  # 4x the area
        ("1280x720", "medium", 0.047),  # 0.053 * 0.8789 = 0.04658 -> rounded up
        ("3840x2160", "high", 1.670),  # 0.211 * 7.910 = 1.66904 -> rounded up
    ],
)
def test_gpt_image_2_per_image_prices(size: str, quality: str | None, price: float) -> None:
    assert PRICES.model("gpt-image-2").image_price(size, quality) == pytest.approx(price)


def test_list_cost_is_per_image_times_n_plus_prompt_tokens() -> None:
    prompt = "x" * 300  # 100 tokens estimated high (chars / 3)
    cost = PRICES.list_cost("gpt-image-2", "1024x1024", "medium", 4, prompt)
    assert cost.images == pytest.approx(0.053 * 4)
    assert cost.text == pytest.approx(100 * 5 / 1e6)
    assert cost.total == pytest.approx(0.212 + 0.0005)


def test_models_in_the_shipped_table() -> None:
    for model in (
        "gpt-image-2",
        "gpt-image-1.5",
        "gpt-image-1",
        "gpt-image-1-mini",
        "dall-e-3",
        "dall-e-2",
    ):
        assert PRICES.model(model).per_image
    assert PRICES.list_cost("dall-e-3", "1024x1792", "hd", 1, "x").total == pytest.approx(0.12)
    assert PRICES.list_cost("dall-e-2", "256x256", None, 2, "x").total == pytest.approx(0.032)


def test_unknown_model_or_size_is_an_error_never_zero() -> None:
    with pytest.raises(PriceError, match=r"unknown model 'gpt-image-9'.*imagegen_prices"):
        PRICES.list_cost("gpt-image-9", "1024x1024", "low", 1, "x")
    with pytest.raises(PriceError, match=r"no price for dall-e-2 size=2048x2048"):
        PRICES.list_cost("dall-e-2", "2048x2048", None, 1, "x")


def test_actual_cost_from_usage_and_fallback() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 1000,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
    }
    assert PRICES.actual_cost("gpt-image-2", usage, 9.0) == pytest.approx(
        (40 * 5 + 10 * 8 + 1000 * 30) / 1e6
    )
    assert PRICES.actual_cost("gpt-image-2", None, 0.25) == 0.25
    assert PRICES.actual_cost("dall-e-3", usage, 0.04) == 0.04  # no token rates


def test_overrides_and_multiplier(tmp_path: Path) -> None:
    override = tmp_path / "gateway.yaml"
    override.write_text(
        "models:\n"
        "  gpt-image-2:\n    per_image:\n      1024x1024: {low: 0.004}\n"
        "  my-model:\n    qualities: [std]\n    per_image:\n      512x512: {std: 0.01}\n"
    )
    table = PriceTable.load(override, multiplier=1.5)
    assert table.list_cost("gpt-image-2", "1024x1024", "low", 1, "").total == pytest.approx(0.006)
    assert table.list_cost("gpt-image-2", "1024x1024", "high", 1, "").total == pytest.approx(
        0.211 * 1.5
    )
    assert table.list_cost("my-model", "512x512", "std", 2, "abc").total == pytest.approx(0.03)
    with pytest.raises(PriceError, match="imagegen_price_multiplier"):
        PriceTable.load(None, multiplier=0)


def test_format_usd() -> None:
    assert format_usd(0.0530) == "$0.0530"
    assert format_usd(12.5) == "$12.5000"


def test_project_prices_and_multiplier_via_ini(project: pytest.Pytester) -> None:
    (project.path / "prices.yaml").write_text(
        "models:\n  gpt-image-2:\n    per_image:\n      1024x1024: {low: 1.0}\n"
    )
    project.makeini("[pytest]\nimagegen_prices = prices.yaml\nimagegen_price_multiplier = 2\n")
    write_suite(project, "s", "cases:\n  - {id: a, prompt: x, quality: low, max_cost: 1.5}\n")
    result = project.runpytest()
    result.stdout.fnmatch_lines(["*list cost $2.0000 is above max_cost $1.5000*"])


def test_bad_price_file_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nimagegen_prices = missing.yaml\n")
    write_suite(project, "s", SMALL_CASE.format(id="a", prompt="x"))
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*imagegen_prices: cannot read*missing.yaml*"])


# ------------------------------------------------------- aliases (SPEC §19, issue 23)

SDK_TEST = """
import os, openai, pytest

@pytest.mark.imagegen(max_cost=0.05)
def test_logo():
    client = openai.OpenAI(base_url=os.environ["IMAGEGEN_BASE_URL"],
                           api_key=os.environ.get("IMAGEGEN_API_KEY", "no-key"), max_retries=0)
    client.images.generate(model={model!r}, prompt="A paper plane logo", size="1024x1024",
                           quality="low")
"""


@pytest.mark.parametrize(
    "alias, model",
    [
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("chatgpt-image-latest", "gpt-image-1.5"),
        ("gpt-image-1.5-2025-12-16", "gpt-image-1.5"),
        ("gpt-image-1-mini-2025-10-06", "gpt-image-1-mini"),
    ],
)
def test_dated_snapshots_and_aliases_are_priced_as_their_model(alias: str, model: str) -> None:
    assert PRICES.model(alias) is PRICES.model(model)
    assert PRICES.list_cost(alias, "1024x1024", "low", 2, "x") == PRICES.list_cost(
        model, "1024x1024", "low", 2, "x"
    )


def test_the_sdk_image_models_of_gpt_image_2_and_chatgpt_are_priced() -> None:
    from typing import get_args

    image_model = pytest.importorskip("openai.types.image_model")
    names = set(get_args(image_model.ImageModel))
    for name in {"gpt-image-2-2026-04-21", "chatgpt-image-latest"} & names:
        assert PRICES.model(name).per_image


def test_unknown_model_error_suggests_a_priced_name_or_alias() -> None:
    with pytest.raises(PriceError) as excinfo:
        PRICES.model("gpt-image-2-2026-04-20")
    message = str(excinfo.value)
    assert (
        "unknown model 'gpt-image-2-2026-04-20' (did you mean 'gpt-image-2-2026-04-21'?)" in message
    )
    assert "aliases: chatgpt-image-latest" in message and "under `aliases:`" in message


def test_override_files_add_and_replace_aliases(tmp_path: Path) -> None:
    override = tmp_path / "gateway.yaml"
    override.write_text(
        "aliases:\n  chatgpt-image-latest: gpt-image-2\n  wisgate-image: my-model\n"
        "models:\n  my-model:\n    qualities: [std]\n    per_image:\n      512x512: {std: 0.01}\n"
        "  gpt-image-2-2026-04-21:\n    qualities: [low]\n    per_image:\n"
        "      1024x1024: {low: 0.5}\n"
    )
    table = PriceTable.load(override)
    assert table.model("chatgpt-image-latest").name == "gpt-image-2"
    assert table.model("wisgate-image").name == "my-model"
    # a priced model of the alias's name wins over the shipped alias
    assert table.model("gpt-image-2-2026-04-21").image_price("1024x1024", "low") == 0.5
    override.write_text("aliases:\n  my-snapshot: gpt-image-7\n")
    with pytest.raises(
        PriceError, match=r"alias 'my-snapshot' points to 'gpt-image-7'.*gpt-image-2"
    ):
        PriceTable.load(override)
    override.write_text("aliases: [gpt-image-2]\n")
    with pytest.raises(PriceError, match=r"`aliases:` must map a model name to a priced model"):
        PriceTable.load(override)


def test_suite_with_a_dated_snapshot_records_and_reports_the_name_used(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 1024x1024, quality: low}
        cases:
          - id: snap
            prompt: "A red kite"
            matrix:
              model: [gpt-image-2-2026-04-21, chatgpt-image-latest]
        """,
    )
    result = project.runpytest("--imagegen-record-mode=once", "--imagegen-report=r.json")
    result.assert_outcomes(passed=2)
    cost = {
        c["model"]: c["list_cost"]
        for c in json.loads((project.path / "r.json").read_text())["cases"]
    }
    assert cost == {  # the names the suite used, priced as their models
        "gpt-image-2-2026-04-21": PRICES.list_cost(
            "gpt-image-2", "1024x1024", "low", 1, "A red kite"
        ).total,
        "chatgpt-image-latest": PRICES.list_cost(
            "gpt-image-1.5", "1024x1024", "low", 1, "A red kite"
        ).total,
    }
    assert sorted(e["body"]["model"] for e in live_env.log) == sorted(cost)


@pytest.mark.parametrize("model", ["gpt-image-2-2026-04-21", "chatgpt-image-latest"])
def test_marked_sdk_test_with_an_alias_is_priced(
    project: pytest.Pytester, live_env: FakeImagesServer, model: str
) -> None:
    pytest.importorskip("openai")
    project.makepyfile(test_images=SDK_TEST.format(model=model))
    result = project.runpytest("--imagegen-record-mode=once", "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["model"] == model and case["list_cost"] > 0


def test_price_error_in_a_marked_test_is_shown_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    pytest.importorskip("openai")
    project.makepyfile(test_images=SDK_TEST.format(model="gpt-image-9"))
    result = project.runpytest("--imagegen-record-mode=once")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert out.count("unknown model 'gpt-image-9'") == 2  # the failure and its summary line
    assert "During handling of the above exception" not in out and "Traceback" not in out
    assert live_env.requests == 0
