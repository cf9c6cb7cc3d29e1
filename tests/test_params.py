"""SPEC §19: suite `params` checked against the provider's parameters; `extra_params` unchecked."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_imagegen.api.params import problems
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import write_suite

ONCE = "--imagegen-record-mode=once"


@pytest.mark.parametrize(
    "endpoint, model, params, message",
    [
        ("generations", "gpt-image-2", {"ouput_format": "png"},
         "unknown parameter 'ouput_format' (did you mean 'output_format'?); allowed: background, "
         "moderation, output_format, output_compression, stream, partial_images, user, "
         "safety_identifier; a field only your gateway takes goes under `extra_params:`"),
        ("generations", "gpt-image-2", {"output_format": "jpeg", "output_compression": 500},
         "output_compression must be a whole number from 0 to 100, got 500"),
        ("generations", "gpt-image-2", {"output_format": "webp", "output_compression": 5.5},
         "output_compression must be a whole number from 0 to 100, got 5.5"),
        ("generations", "gpt-image-2", {"stream": True, "partial_images": 9},
         "partial_images must be a whole number from 0 to 3, got 9"),
        ("generations", "gpt-image-2", {"partial_images": 2},
         "partial_images is for streamed responses; add `stream: true`"),
        ("generations", "gpt-image-2", {"stream": "yes"}, "stream must be true or false"),
        ("generations", "gpt-image-2", {"output_compression": 80},
         "output_compression only applies to jpeg and webp, but output_format is png"),
        ("generations", "gpt-image-1", {"output_format": "jpg"},
         "'jpg' is not a value of output_format (did you mean 'jpeg'?); allowed: png, jpeg, webp"),
        ("generations", "gpt-image-2", {"background": "transparent", "output_format": "jpeg"},
         "a transparent background needs output_format png or webp, got jpeg"),
        ("generations", "gpt-image-2", {"background": "clear"},
         "'clear' is not a value of background; allowed: transparent, opaque, auto"),
        ("generations", "gpt-image-1.5", {"moderation": "LOW"},
         "'LOW' is not a value of moderation (did you mean 'low'?)"),
        ("generations", "gpt-image-2", {"response_format": "url"},
         "GPT image models do not take response_format (they always return base64 images)"),
        ("generations", "gpt-image-2", {"style": "vivid"},
         "GPT image models do not take style (describe the style in the prompt instead)"),
        ("generations", "dall-e-2", {"style": "vivid"},
         "dall-e-2 models do not take style (describe the style in the prompt instead)"),
        ("generations", "dall-e-3", {"output_format": "png"},
         "dall-e-3 models do not take output_format (only gpt-image take it)"),
        ("generations", "gpt-image-1.5", {"input_fidelity": "high"},
         "input_fidelity is only taken by edits (cases with `image:`)"),
        ("edits", "gpt-image-1.5", {"moderation": "low"},
         "moderation is only taken by generations"),
        ("edits", "gpt-image-2", {"input_fidelity": "high"},
         "gpt-image-2 always uses high input fidelity and does not take input_fidelity"),
        ("edits", "gpt-image-1-mini", {"input_fidelity": "high"},
         "gpt-image-1-mini takes only `input_fidelity: low`"),
        ("generations", "gpt-image-2", {"user": ""}, "user must be a non-empty string"),
    ],
)  # fmt: skip
def test_openai_rules(endpoint: Any, model: str, params: dict[str, Any], message: str) -> None:
    found = problems("openai", endpoint, params, model=model)
    assert len(found) == 1, found
    assert message in found[0][1], found


@pytest.mark.parametrize(
    "endpoint, model, params",
    [
        ("generations", "gpt-image-2",
         {"output_format": "webp", "output_compression": 80, "background": "transparent",
          "moderation": "low", "user": "u-1", "safety_identifier": "h-1"}),
        ("generations", "gpt-image-2", {"stream": True, "partial_images": 0}),
        ("generations", "gpt-image-2", {"output_format": None, "background": None}),
        ("generations", "chatgpt-image-latest", {"output_format": "jpeg", "output_compression": 0}),
        ("generations", "dall-e-3", {"style": "natural", "response_format": "b64_json"}),
        ("generations", "dall-e-2", {"response_format": "url"}),
        ("edits", "gpt-image-1.5", {"input_fidelity": "high", "background": "opaque"}),
        ("edits", "gpt-image-1-mini", {"input_fidelity": "low"}),
        # a gateway's own model: known keys and values are checked, not per-model rules
        ("generations", "flux-pro", {"style": "vivid", "output_format": "png"}),
    ],
)  # fmt: skip
def test_valid_params_pass(endpoint: Any, model: str, params: dict[str, Any]) -> None:
    assert problems("openai", endpoint, params, model=model) == []


def test_case_fields_are_left_to_the_loader_and_unknown_providers_are_unchecked() -> None:
    assert problems("openai", "generations", {"size": "1x1", "quality": "?"}, "gpt-image-2") == []
    assert problems("somewhere-else", "generations", {"anything": 1}, "m") == []


@pytest.mark.parametrize(
    "params, message",
    [
        ("{ouput_format: png}",
         "s.yaml:3: case 'kite': field 'params': unknown parameter 'ouput_format' "
         "(did you mean 'output_format'?); allowed: background, moderation, output_format, *"),
        ("{output_format: jpeg, output_compression: 500}",
         "s.yaml:3: case 'kite': field 'params': output_compression must be a whole number "
         "from 0 to 100, got 500"),
        ("{stream: true, partial_images: 9}",
         "s.yaml:3: case 'kite': field 'params': partial_images must be a whole number from 0 "
         "to 3, got 9"),
    ],
    ids=["misspelt key", "compression out of range", "partial images out of range"],
)  # fmt: skip
def test_bad_params_are_collection_errors_and_never_reach_the_api(
    project: pytest.Pytester, live_env: FakeImagesServer, params: str, message: str
) -> None:
    write_suite(
        project,
        "s",
        f"""
        cases:
          - id: kite
            params: {params}
            prompt: "A red kite"
            size: 256x256
            quality: low
        """,
    )
    result = project.runpytest(ONCE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"prompt_suites/{message}"])
    assert "Traceback" not in result.stdout.str()
    assert live_env.requests == 0


def test_problems_point_at_the_key_in_defaults_and_in_a_matrix(project: pytest.Pytester) -> None:
    write_suite(
        project,
        "s",
        """
        defaults:
          params:
            output_format: png
            moderaton: low
        cases:
          - id: kite
            prompt: "A red kite"
            matrix:
              params.output_format: [png, gif]
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*s.yaml:4: case 'kite': field 'params': unknown parameter 'moderaton' "
            "(did you mean 'moderation'?)*",
        ]
    )
    write_suite(
        project,
        "s",
        """
        cases:
          - id: kite
            prompt: "A red kite"
            matrix:
              params.output_format: [png, gif]
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*s.yaml:5: case 'kite': field 'params': 'gif' is not a value of output_format*"]
    )


SEEDED = """
    defaults: {{size: 256x256, quality: low, params: {{output_format: png}}}}
    cases:
      - id: kite
        prompt: "A red kite"
        extra_params: {{seed: {seed}}}
"""


def test_extra_params_are_sent_unchecked_and_part_of_the_cassette(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(project, "s", SEEDED.format(seed=7))
    project.runpytest(ONCE).assert_outcomes(passed=1)
    (entry,) = live_env.log
    assert entry["body"]["seed"] == 7 and entry["body"]["output_format"] == "png"
    project.runpytest().assert_outcomes(passed=1)  # replayed: the same body
    write_suite(project, "s", SEEDED.format(seed=8))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*stale cassette for prompt_suites/s.yaml::kite*", "    seed: 7 → 8"]
    )
    assert live_env.requests == 1


def test_extra_params_in_a_matrix_and_their_own_errors(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - id: kite
            prompt: "A red kite"
            matrix:
              extra_params.seed: [1, 2]
        """,
    )
    result = project.runpytest(ONCE, "-v")
    result.assert_outcomes(passed=2)
    assert sorted(e["body"]["seed"] for e in live_env.log) == [1, 2]
    write_suite(
        project,
        "s",
        """
        defaults: {params: {output_format: png}}
        cases:
          - id: kite
            prompt: "A red kite"
            extra_params: {output_format: webp, n: 2}
          - {id: boat, prompt: "A boat", extra_params: [seed]}
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*s.yaml:5: case 'kite': field 'extra_params': 'n' is a case field; set `n:` on "
            "the case, not in extra_params",
            "*s.yaml:5: case 'kite': field 'extra_params': 'output_format' is in both params "
            "and extra_params; keep one*",
            "*s.yaml:6: case 'boat': field 'extra_params': must be a mapping of request fields*",
        ]
    )
