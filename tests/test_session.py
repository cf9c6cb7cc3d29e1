"""Session-level behaviour: the fake-server option, xdist, the summary."""

from __future__ import annotations

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import SMALL_CASE, needs_xdist, write_suite


def test_fake_server_option_needs_no_key_and_no_network(project: pytest.Pytester) -> None:
    write_suite(project, "s", SMALL_CASE.format(id="a", prompt="A kite"))
    result = project.runpytest("--imagegen-fake-server", "--imagegen-record-mode=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*recorded: 1*"])


@needs_xdist
def test_summary_is_merged_once_under_xdist(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: one}
          - {id: b, prompt: two}
          - {id: c, prompt: three}
          - {id: d, prompt: four, n: 2}
        """,
    )
    result = project.runpytest("-n", "2", "--imagegen-record-mode=all")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert out.count("- imagegen -") == 1
    result.stdout.fnmatch_lines(
        ["cases: 4  *recorded: 4 *", "spent: *  live-equivalent: $0.0050  *"]
    )
    assert live_env.requests == 4
