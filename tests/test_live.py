"""SPEC §3: live requests over loopback to the fake server: keys, base URL, errors, retries."""

from __future__ import annotations

import pytest

from pytest_imagegen.api.redact import key_digest
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, DEAD_URL, SMALL_CASE, write_suite

ALL = "--imagegen-record-mode=all"


def small_suite(pytester: pytest.Pytester, prompt: str = "A red bicycle", **extra: str) -> None:
    text = SMALL_CASE.format(id="bike", prompt=prompt)
    for key, value in extra.items():
        text += f"        {key}: {value}\n"
    write_suite(pytester, "s", text)


def test_live_case_passes_and_sends_the_request(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {quality: low, params: {output_format: png, background: opaque}}
        cases:
          - {id: bike, prompt: "A red bicycle", size: 256x256, n: 2}
        """,
    )
    result = project.runpytest(ALL)
    result.assert_outcomes(passed=1)
    assert live_env.requests == 1
    entry = live_env.log[0]
    assert entry["body"] == {
        "model": "gpt-image-2",
        "prompt": "A red bicycle",
        "n": 2,
        "size": "256x256",
        "quality": "low",
        "output_format": "png",
        "background": "opaque",
    }
    assert entry["key_sha256"] == key_digest(CANARY_KEY)
    result.stdout.fnmatch_lines(["*- imagegen -*", "cases: 1  *", "*live-equivalent: $0.00*"])


def test_none_mode_sends_nothing_and_says_how_to_record(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    small_suite(project)
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "no cassette for prompt_suites/s.yaml::bike; record it with "
            "`pytest --imagegen-record-mode=once prompt_suites/s.yaml::bike` (estimated cost $0.00*)",
        ]
    )
    assert live_env.requests == 0


# ------------------------------------------------------------------- API key


@pytest.mark.parametrize(
    "env, used",
    [
        (
            {"IMAGEGEN_API_KEY": "key-1", "WISGATE_API_KEY": "key-2", "OPENAI_API_KEY": "key-3"},
            "key-1",
        ),
        ({"WISGATE_API_KEY": "key-2", "OPENAI_API_KEY": "key-3"}, "key-2"),
        ({"OPENAI_API_KEY": "key-3"}, "key-3"),
    ],
)
def test_key_lookup_order(
    project: pytest.Pytester,
    fake_server: FakeImagesServer,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    used: str,
) -> None:
    monkeypatch.setenv("IMAGEGEN_BASE_URL", fake_server.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    small_suite(project)
    project.runpytest(ALL).assert_outcomes(passed=1)
    assert [e["key_sha256"] for e in fake_server.log] == [key_digest(used)]


def test_missing_key_fails_naming_variables_and_sends_nothing(
    project: pytest.Pytester, fake_server: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_BASE_URL", fake_server.url)
    small_suite(project)
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no API key*none of IMAGEGEN_API_KEY, WISGATE_API_KEY, OPENAI_API_KEY is set*nothing was sent*"
        ]
    )
    assert fake_server.requests == 0


def test_key_is_never_an_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--imagegen-api-key=abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# ------------------------------------------------------------------ base URL


@pytest.fixture
def three_servers() -> list[FakeImagesServer]:
    servers = [FakeImagesServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.parametrize("layers, winner", [(3, 0), (2, 1), (1, 2)])
def test_base_url_precedence_option_env_ini(
    project: pytest.Pytester,
    three_servers: list[FakeImagesServer],
    monkeypatch: pytest.MonkeyPatch,
    layers: int,
    winner: int,
) -> None:
    option_srv, env_srv, ini_srv = three_servers
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    project.makeini(f"[pytest]\nimagegen_backoff = 0.01\nimagegen_base_url = {ini_srv.url}\n")
    monkeypatch.delenv("IMAGEGEN_BASE_URL")
    args = [ALL]
    if layers >= 2:
        monkeypatch.setenv("IMAGEGEN_BASE_URL", env_srv.url)
    if layers >= 3:
        args.append(f"--imagegen-base-url={option_srv.url}")
    small_suite(project)
    project.runpytest(*args).assert_outcomes(passed=1)
    assert [s.requests for s in three_servers] == [int(i == winner) for i in range(3)]


def test_default_base_url_is_wisgate() -> None:
    from pytest_imagegen.api.settings import resolve_base_url

    assert resolve_base_url(None, {}, None) == ("https://api.wisgate.ai/v1", "default")


# ---------------------------------------------------------- errors / retries


@pytest.mark.parametrize(
    "failure, message",
    [
        (
            {"status": 400, "code": "content_policy_violation"},
            "*HTTP 400 invalid_request_error content_policy_violation: Your request was rejected*",
        ),
        ({"status": 401}, "*HTTP 401*Incorrect API key provided*"),
        ({"status": 403}, "*HTTP 403*not allowed to use this model*"),
        (
            {"status": 429, "code": "insufficient_quota"},
            "*HTTP 429 insufficient_quota: You exceeded your current quota*",
        ),
    ],
)
def test_non_retryable_errors_fail_with_api_message(
    project: pytest.Pytester, live_env: FakeImagesServer, failure: dict[str, object], message: str
) -> None:
    live_env.inject(failure)
    small_suite(project)
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message, "*what to do:*"])
    assert live_env.requests == 1  # never retried


def test_validation_error_from_api(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    small_suite(project, extra_params="{styel: vivid}")  # unchecked: the API refuses it
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*HTTP 400 invalid_request_error unknown_parameter: Unknown parameter: 'styel'.*"]
    )
    assert live_env.requests == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 429, "retry_after": 0.05},
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 504},
        {"drop": True},
    ],
    ids=["429-retry-after", "500", "502", "503", "504", "dropped"],
)
def test_transient_failures_are_retried(
    project: pytest.Pytester, live_env: FakeImagesServer, failure: dict[str, object]
) -> None:
    live_env.inject({**failure, "count": 2})
    small_suite(project)
    project.runpytest(ALL).assert_outcomes(passed=1)
    assert live_env.requests == 3  # two failures, then success


def test_timeout_is_retried(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_timeout = 1\n")
    live_env.inject({"delay": 3.0})
    small_suite(project)
    project.runpytest(ALL).assert_outcomes(passed=1)
    assert live_env.requests == 2


def test_retries_give_up_after_max_retries(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_max_retries = 2\n")
    live_env.inject({"status": 503, "count": 5})
    small_suite(project)
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*images request failed after 3 attempts: HTTP 503*", "*what to do:*"]
    )
    assert live_env.requests == 3


def test_retry_after_is_honoured() -> None:
    from pytest_imagegen.api.client import ImagesClient

    waits: list[float] = []
    with FakeImagesServer() as server:
        server.inject({"status": 429, "retry_after": 7}, {"status": 500})
        client = ImagesClient(server.url, "k", backoff=0.25, sleep=waits.append)
        client.generate(
            {"model": "gpt-image-2", "prompt": "x", "size": "256x256", "quality": "low"}
        )
    assert waits == [7.0, 0.5]  # Retry-After, then exponential backoff (0.25 * 2**1)


def test_connection_refused_fails_clearly(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGEN_API_KEY", CANARY_KEY)
    project.makeini("[pytest]\nimagegen_backoff = 0.01\nimagegen_max_retries = 1\n")
    small_suite(project)
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*images request could not connect after 2 attempt(s): ConnectError*check the base URL*"]
    )
    assert DEAD_URL  # the autouse fixture points here


def test_url_response_is_downloaded(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - {id: old, prompt: "A cat", model: dall-e-2, size: 256x256, n: 2, params: {response_format: url}}
        """,
    )
    project.runpytest(ALL).assert_outcomes(passed=1)
    assert live_env.requests == 1 and live_env.downloads == 2


# ----------------------------------------------------------------- expectations


def test_expectations_fail_readably(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - id: bike
            prompt: "A red bicycle"
            size: 256x256
            quality: low
            params: {output_format: webp}
            expect: {count: 2, size: 512x512, format: png}
        """,
    )
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "expect.count: expected 2 image(s), got 1",
            "expect.size: image 1 is 256x256, expected 512x512",
            "expect.format: image 1 is webp, expected png",
            "case 'bike' at prompt_suites/s.yaml:2",
        ]
    )


# ---------------------------------------------------------------- ceilings


def test_ceiling_refusal_sends_nothing(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        cases:
          - {id: big, prompt: "Poster", size: 1024x1024, quality: high, n: 4, max_cost: 0.10}
        """,
    )
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "list cost $0.8440 is above max_cost $0.1000 (gpt-image-2 1024x1024 quality=high n=4); no request was sent."
        ]
    )
    assert live_env.requests == 0


def test_default_ceiling_from_ini(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    project.makeini("[pytest]\nimagegen_default_max_cost = 0.01\n")
    write_suite(
        project,
        "s",
        "cases:\n  - {id: med, prompt: x, quality: medium}\n  - {id: low, prompt: y, quality: low, size: 256x256}\n",
    )
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*list cost $0.0530 is above max_cost $0.0100*"])
    assert live_env.requests == 1
