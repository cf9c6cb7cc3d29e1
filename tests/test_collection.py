"""SPEC §2: discovery, node ids, matrix ids, tags as keywords."""

from __future__ import annotations

import pytest

from .conftest import write_suite


def test_default_suite_dir_and_node_ids(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester,
        "landing",
        """
        cases:
          - {id: hero-sunset, prompt: "A sunset", size: 1536x1024, quality: medium}
          - id: app-icon
            prompt: "Flat app icon of a paper plane"
            matrix:
              quality: [low, medium]
              size: [1024x1024, 1024x1536]
        """,
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "prompt_suites/landing.yaml::hero-sunset",
            "prompt_suites/landing.yaml::app-icon[[]quality=low-size=1024x1024[]]",
            "prompt_suites/landing.yaml::app-icon[[]quality=low-size=1024x1536[]]",
            "prompt_suites/landing.yaml::app-icon[[]quality=medium-size=1024x1024[]]",
            "prompt_suites/landing.yaml::app-icon[[]quality=medium-size=1024x1536[]]",
            "5 tests collected*",
        ]
    )


def test_not_collected_outside_suite_dirs_or_without_cases(pytester: pytest.Pytester) -> None:
    write_suite(pytester, "config_only", "settings: {a: 1}\n")
    (pytester.path / "other").mkdir()
    (pytester.path / "other" / "s.yaml").write_text("cases:\n  - {id: a, prompt: hi}\n")
    for sub in ("cassettes", "baselines"):
        d = pytester.path / "prompt_suites" / sub
        d.mkdir(parents=True)
        (d / "x.yaml").write_text("cases:\n  - {id: a, prompt: hi}\n")
    write_suite(pytester, "real", "cases:\n  - {id: a, prompt: hi}\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["prompt_suites/real.yaml::a", "1 test collected*"])


def test_ini_suite_dirs_and_yml(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nimagegen_suites = suites more\n")
    for d in ("suites", "more"):
        (pytester.path / d).mkdir()
    (pytester.path / "suites" / "a.yml").write_text("cases:\n  - {id: one, prompt: hi}\n")
    (pytester.path / "more" / "b.yaml").write_text("cases:\n  - {id: two, prompt: hi}\n")
    write_suite(pytester, "ignored", "cases:\n  - {id: three, prompt: hi}\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["more/b.yaml::two", "suites/a.yml::one", "2 tests collected*"])


def test_suite_file_given_on_command_line(pytester: pytest.Pytester) -> None:
    (pytester.path / "elsewhere").mkdir()
    path = pytester.path / "elsewhere" / "adhoc.yaml"
    path.write_text("cases:\n  - {id: one, prompt: hi}\n")
    result = pytester.runpytest("--collect-only", "-q", str(path))
    result.stdout.fnmatch_lines(["elsewhere/adhoc.yaml::one", "1 test collected*"])


def test_explicit_non_suite_yaml_is_a_clear_error(pytester: pytest.Pytester) -> None:
    path = pytester.path / "config.yaml"
    path.write_text("a: 1\n")
    result = pytester.runpytest("--collect-only", str(path))
    result.stdout.fnmatch_lines(
        ["config.yaml:1: not a prompt suite: a top-level `cases:` list is required"]
    )


def test_tags_and_category_select_with_k(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester,
        "social",
        """
        category: social-graphics
        defaults: {tags: [social]}
        cases:
          - {id: story, prompt: a, tags: [hero]}
          - {id: post, prompt: b, tags: [square]}
          - {id: banner, prompt: c}
        """,
    )
    result = pytester.runpytest("--collect-only", "-q", "-k", "hero")
    result.stdout.fnmatch_lines(["prompt_suites/social.yaml::story", "1/3 tests collected*"])
    result = pytester.runpytest("--collect-only", "-q", "-k", "square or hero")
    result.stdout.fnmatch_lines(["*2/3 tests collected*"])
    result = pytester.runpytest("--collect-only", "-q", "-k", "social and not hero")
    result.stdout.fnmatch_lines(["*2/3 tests collected*"])
    result = pytester.runpytest("--collect-only", "-q", "-k", "social-graphics")
    result.stdout.fnmatch_lines(["*3 tests collected*"])


def test_options_and_ini_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "image generation prompt suites (pytest-imagegen):",
            "*--imagegen-record-mode*",
            "*--imagegen-base-url=URL*",
            "*imagegen_suites (args):*",
            "*imagegen_default_max_cost (string):*",
        ]
    )


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nimagegen_timeout = soon\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*pytest-imagegen: ini imagegen_timeout: 'soon' is not a number*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
