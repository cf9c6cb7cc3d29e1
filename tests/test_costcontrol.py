"""SPEC §5/§6: actual cost, ceilings, session budget, estimate, reports, PR gate, ledger, profiles."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_imagegen.fakeserver import FakeImagesServer
from pytest_imagegen.money.prices import PriceTable
from pytest_imagegen.review.gate import CostDiff, parse_cost_limit

from .conftest import CANARY_KEY, XDIST_2, needs_xdist, write_suite

PRICES = PriceTable.load()
ONCE = "--imagegen-record-mode=once"
LEDGER = Path("prompt_suites/.imagegen/ledger.jsonl")


def small_cost(prompt: str, n: int = 1) -> float:
    return PRICES.list_cost("gpt-image-2", "256x256", "low", n, prompt).total


def ledger_lines(root: Path) -> list[dict[str, object]]:
    path = root / LEDGER
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def kite_suite(
    project: pytest.Pytester, n: int = 1, prompt: str = "A red kite", **extra: str
) -> None:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    write_suite(
        project,
        "s",
        f"""
        category: kites
        cases:
          - {{id: kite, prompt: "{prompt}", size: 256x256, quality: low, n: {n}{more}}}
        """,
    )


# ------------------------------------------------------------ actual cost / ceilings


def test_actual_cost_over_ceiling_fails_after_the_call_and_keeps_the_cassette(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project, max_cost=0.01)
    # the API bills more than the list price said (e.g. a price change): $30 of output
    live_env.inject({"usage": {"input_tokens": 10, "output_tokens": 1_000_000}})
    result = project.runpytest(ONCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*actual cost $30.0001 (from the response's usage) is above max_cost $0.0100; "
            "the money is spent and the cassette is kept.",
            "  the API billed more than the list cost $0.0010: check the price table*",
        ]
    )
    assert live_env.requests == 1
    assert (project.path / "prompt_suites/cassettes/s/kite.yaml").is_file()
    result.stdout.fnmatch_lines(["cost ceiling failures: 1"])


def test_list_ceiling_applies_in_replay_before_anything_else(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project, n=1, max_cost=0.003)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    live_env.reset()
    kite_suite(project, n=4, max_cost=0.003)
    result = project.runpytest()  # replay mode
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*list cost $0.00* is above max_cost $0.0030 (*n=4); no request was sent.*"]
    )
    assert "stale cassette" not in result.stdout.str()
    assert live_env.requests == 0


# ------------------------------------------------------------------- budget


@needs_xdist
def test_budget_holds_across_four_workers(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    live_env.latency = 1.0
    cases = "\n".join(f'  - {{id: c{i}, prompt: "kite number {i}"}}' for i in range(10))
    write_suite(project, "s", f"defaults: {{size: 256x256, quality: low}}\ncases:\n{cases}\n")
    each = small_cost("kite number 0")
    budget = 3 * each
    result = project.runpytest("-n", "4", ONCE, f"--imagegen-budget={budget!r}")
    assert 1 <= live_env.requests <= 3
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == live_env.requests
    assert outcomes["failed"] == 10 - live_env.requests
    result.stdout.fnmatch_lines(["*session budget $0.00* would be exceeded*no request was sent*"])
    spent = sum(float(e["actual_cost"]) for e in ledger_lines(project.path))  # type: ignore[arg-type]
    assert 0 < spent <= budget
    assert len(ledger_lines(project.path)) == live_env.requests
    result.stdout.fnmatch_lines([f"budget: * spent: * requests refused: {10 - live_env.requests}"])


def test_budget_pays_retries_once(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: first, prompt: "kite one"}
          - {id: second, prompt: "kite two"}
        """,
    )
    live_env.inject({"status": 500, "count": 2})
    budget = 1.5 * small_cost("kite one")
    result = project.runpytest("-p", "no:randomly", ONCE, f"--imagegen-budget={budget!r}")
    result.assert_outcomes(passed=1, failed=1)
    assert live_env.requests == 3  # two failed tries and the success: one case paid once
    result.stdout.fnmatch_lines(["*second*", "*session budget*would be exceeded*"])


def test_zero_budget_sends_nothing_but_replays(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project)
    result = project.runpytest(ONCE, "--imagegen-budget=0")
    result.assert_outcomes(failed=1)
    assert live_env.requests == 0


# ----------------------------------------------------------------- estimate


def _three_states(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: fresh, prompt: "kept"}
          - {id: stale, prompt: "before"}
        """,
    )
    project.runpytest(ONCE).assert_outcomes(passed=2)
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: fresh, prompt: "kept"}
          - {id: stale, prompt: "after"}
          - {id: missing, prompt: "new", n: 2}
          - {id: pricey, prompt: "big", size: 1024x1024, quality: high, max_cost: 0.05}
        """,
    )
    live_env.reset()


@pytest.mark.parametrize("xdist", [[], XDIST_2])
def test_estimate_prints_costs_and_sends_nothing(
    project: pytest.Pytester, live_env: FakeImagesServer, xdist: list[str]
) -> None:
    _three_states(project, live_env)
    result = project.runpytest("--imagegen-estimate", "--imagegen-record-mode=all", *xdist)
    assert result.ret == 0
    assert live_env.requests == 0
    once = small_cost("after") + small_cost("new", n=2)
    live = once + small_cost("kept")
    result.stdout.fnmatch_lines(
        [
            "*imagegen estimate*",
            "prompt_suites/s.yaml::fresh  * gpt-image-2 256x256 low n=1 * $0.00*  cassette: fresh",
            "prompt_suites/s.yaml::stale  * cassette: stale",
            "prompt_suites/s.yaml::missing * n=2 * cassette: missing",
            "prompt_suites/s.yaml::pricey * $0.2110  cassette: missing  over max_cost $0.0500*",
            "cases: 4 (1 over their max_cost)",
            f"full live run (--imagegen-record-mode=all): ${live:.4f}",
            f"once recording (--imagegen-record-mode=once, 2 cases without a fresh cassette): ${once:.4f}",
            "nothing was sent and no test was run",
        ]
    )
    assert "passed" not in result.stdout.str().splitlines()[-1]
    rows = [line for line in result.stdout.lines if "cassette: " in line]
    assert len({line.index("$") for line in rows}) == 1  # prices in one column
    assert "failed" not in result.stdout.str()


def test_estimate_respects_selection(project: pytest.Pytester, live_env: FakeImagesServer) -> None:
    _three_states(project, live_env)
    result = project.runpytest("--imagegen-estimate", "-k", "missing")
    result.stdout.fnmatch_lines(["cases: 1"])


# ------------------------------------------------------------------ reports


def test_json_markdown_step_summary_and_junit(
    project: pytest.Pytester, live_env: FakeImagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kite_suite(project)
    step = project.path / "step-summary.md"
    step.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = project.runpytest(
        ONCE,
        "--imagegen-report=out/report.json",
        "--imagegen-markdown=out/report.md",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(passed=1)
    report = json.loads((project.path / "out/report.json").read_text())
    (case,) = report["cases"]
    assert list(case) == [
        "nodeid", "suite", "category", "model", "size", "quality", "n", "list_cost",
        "actual_cost", "max_cost", "cassette", "saved", "ceiling", "drift", "outcome",
        "revised_prompts", "text", "accepted", "judge", "judge_cost", "images", "accept_rate",
        "cost_per_accepted", "group", "variant", "states", "stale_changes", "rerecord_command",
        "rerecord_cost",
    ]  # fmt: skip
    assert case["nodeid"] == "prompt_suites/s.yaml::kite"
    assert case["category"] == "kites"
    assert case["cassette"] == "recorded"
    assert case["outcome"] == "passed"
    assert case["list_cost"] == pytest.approx(small_cost("A red kite"))
    assert 0 < case["actual_cost"] <= case["list_cost"]
    assert report["summary"]["recorded"] == 1
    md = (project.path / "out/report.md").read_text()
    assert "| `prompt_suites/s.yaml::kite` | gpt-image-2 | 256x256 | low | 1 |" in md
    assert "| recorded | accepted | 1/1 | $0.0009 | passed |" in md
    assert step.read_text() == "# earlier step\n" + md
    props = {
        p.get("name"): p.get("value")
        for p in ET.parse(project.path / "junit.xml").getroot().iter("property")
    }
    assert float(props["list_cost"]) == pytest.approx(case["list_cost"])
    assert float(props["actual_cost"]) == pytest.approx(case["actual_cost"])


@needs_xdist
def test_report_under_xdist_has_every_case_once(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    cases = "\n".join(f'  - {{id: c{i}, prompt: "p{i}"}}' for i in range(4))
    write_suite(project, "s", f"defaults: {{size: 256x256, quality: low}}\ncases:\n{cases}\n")
    result = project.runpytest("-n", "2", ONCE, "--imagegen-report=r.json")
    result.assert_outcomes(passed=4)
    report = json.loads((project.path / "r.json").read_text())
    assert sorted(c["nodeid"].split("::")[1] for c in report["cases"]) == ["c0", "c1", "c2", "c3"]
    assert report["summary"]["cases"] == 4


# ------------------------------------------------------------------ PR gate


def test_gate_fails_on_increase_without_sending(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project, n=1)
    project.runpytest(ONCE, "--imagegen-report=main-report.json").assert_outcomes(passed=1)
    live_env.reset()
    kite_suite(project, n=4)  # the PR
    result = project.runpytest(
        "--imagegen-cost-baseline=main-report.json", "--imagegen-max-cost-increase=10%"
    )
    assert result.ret != 0
    assert live_env.requests == 0
    old, new = small_cost("A red kite"), small_cost("A red kite", n=4)
    result.stdout.fnmatch_lines(
        [
            "cost change vs baseline (list cost of a live run):",
            f"  changed  prompt_suites/s.yaml::kite: ${old:.4f} -> ${new:.4f}",
            f"  total: ${old:.4f} -> ${new:.4f} (+${new - old:.4f}, +*%)",
            "  allowed increase: 10% -> EXCEEDED",
        ]
    )


@pytest.mark.parametrize("estimate", [False, True])
def test_gate_alone_sets_the_exit_status(
    project: pytest.Pytester, live_env: FakeImagesServer, estimate: bool
) -> None:
    """Every test passes; only the cost increase fails the session."""
    kite_suite(project, n=1)
    project.runpytest(ONCE, "--imagegen-report=base.json").assert_outcomes(passed=1)
    kite_suite(project, n=2)
    args = ["--imagegen-cost-baseline=base.json", "--imagegen-max-cost-increase=0.0001"]
    if estimate:
        result = project.runpytest("--imagegen-estimate", *args)
        assert live_env.requests == 1
    else:
        result = project.runpytest(
            "--imagegen-record-mode=new_episodes", "--imagegen-drift=off", *args
        )
        result.assert_outcomes(passed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  allowed increase: $0.0001 -> EXCEEDED"])


def test_gate_passes_on_decrease_and_lists_added_and_removed(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: "one", n: 3}
          - {id: gone, prompt: "two"}
        """,
    )
    project.runpytest(ONCE, "--imagegen-report=base.json").assert_outcomes(passed=2)
    write_suite(
        project,
        "s",
        """
        defaults: {size: 256x256, quality: low}
        cases:
          - {id: a, prompt: "one", n: 1}
          - {id: new, prompt: "three"}
        """,
    )
    result = project.runpytest(
        "--imagegen-record-mode=new_episodes",
        "--imagegen-cost-baseline=base.json",
        "--imagegen-max-cost-increase=0",
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "  added    prompt_suites/s.yaml::new: $0.00*",
            "  removed  prompt_suites/s.yaml::gone: $0.00*",
            "  changed  prompt_suites/s.yaml::a: $0.00* -> $0.00*",
            "  total: * (-$0.00*, -*%)",
            "  allowed increase: $0.0000 -> within",
        ]
    )


def test_cost_limit_parsing() -> None:
    assert parse_cost_limit("10%").percent and parse_cost_limit("10%").amount == 10
    assert parse_cost_limit("$0.50").amount == 0.5 and not parse_cost_limit("0.50").percent
    diff = CostDiff(old_total=1.0, new_total=1.2)
    assert diff.exceeds(parse_cost_limit("10%")) and not diff.exceeds(parse_cost_limit("25%"))
    assert diff.exceeds(parse_cost_limit("0.1")) and not diff.exceeds(parse_cost_limit("0.2"))
    assert CostDiff(0.0, 0.5).exceeds(parse_cost_limit("1000%"))  # from nothing: always more
    assert not CostDiff(1.0, 0.5).exceeds(parse_cost_limit("0"))


# ------------------------------------------------------------------- ledger


def test_ledger_tracks_iterations_requests_and_spend(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project, prompt="A red kite")
    project.runpytest(ONCE).assert_outcomes(passed=1)
    kite_suite(project, prompt="A red kite at dusk")  # second iteration of the prompt
    project.runpytest(
        "--imagegen-record-mode=new_episodes", "--imagegen-drift=off"
    ).assert_outcomes(passed=1)
    project.runpytest("--imagegen-record-mode=all", "--imagegen-drift=off").assert_outcomes(
        passed=1
    )
    live_env.inject({"status": 400, "code": "content_policy_violation"})
    project.runpytest("--imagegen-record-mode=all").assert_outcomes(failed=1)
    lines = ledger_lines(project.path)
    assert [e["outcome"] for e in lines] == ["ok", "ok", "ok", "api error 400"]
    assert lines[3]["actual_cost"] == 0.0
    first = lines[0]
    assert set(first) == {
        "time", "nodeid", "suite", "category", "prompt_sha256", "params",
        "list_cost", "actual_cost", "outcome", "attempts", "server", "kind",
    }  # fmt: skip
    assert first["server"] == "live" and first["attempts"] == 1
    assert first["params"] == {"model": "gpt-image-2", "n": 1, "size": "256x256", "quality": "low"}
    assert CANARY_KEY not in (project.path / LEDGER).read_text()
    spend = sum(float(e["actual_cost"]) for e in lines)  # type: ignore[arg-type]
    result = project.runpytest("--imagegen-ledger")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*imagegen ledger: prompt_suites/.imagegen/ledger.jsonl*",
            "category / case * iterations * requests * spend",
            f"kites * 2 * 4 * ${spend:.4f}",
            f"  prompt_suites/s.yaml::kite * 2 * 4 * ${spend:.4f}",
            f"total * 2 * 4 * ${spend:.4f}",
        ]
    )
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()
    assert len(ledger_lines(project.path)) == 4  # printing the ledger ran nothing


def test_replays_do_not_touch_the_ledger(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    kite_suite(project)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    project.runpytest().assert_outcomes(passed=1)
    assert len(ledger_lines(project.path)) == 1


# ----------------------------------------------------------------- profiles

PROFILES = """
exploration: {max_size: 1024x1024, max_n: 1, quality: [low], max_cost: 0.01}
production: {max_n: 4, quality: [medium, high], max_cost: 0.25}
"""


def _profiles(project: pytest.Pytester, text: str = PROFILES) -> None:
    (project.path / "prompt_suites").mkdir(exist_ok=True)
    (project.path / "prompt_suites/profiles.yaml").write_text(text)


@pytest.mark.parametrize(
    "case, message",
    [
        ("n: 2", "profile 'exploration' allows n up to 1; the case asks for n=2"),
        ("size: 1536x1024", "profile 'exploration' allows sizes up to 1024x1024 (pixel area); the case asks for 1536x1024"),
        ("quality: medium", "profile 'exploration' allows quality low; the case asks for medium"),
        ("max_cost: 0.5", "profile 'exploration' allows max_cost up to $0.0100; the case sets max_cost $0.5000"),
        ("use_case: production", "profile 'production' allows quality medium, high; the case asks for low"),
        ("use_case: explore", "unknown profile 'explore' (did you mean 'exploration'?); defined in profiles.yaml: exploration, production"),
    ],
)  # fmt: skip
def test_profile_violations_are_collection_errors(
    project: pytest.Pytester, case: str, message: str
) -> None:
    _profiles(project)
    write_suite(
        project,
        "s",
        f"""
        use_case: exploration
        defaults: {{size: 1024x1024, quality: low}}
        cases:
          - {{id: ok, prompt: "fine"}}
          - {{id: bad, prompt: "too much", {case}}}
        """,
    )
    result = project.runpytest("--collect-only")
    assert result.ret == 2
    result.stdout.fnmatch_lines(
        [f"prompt_suites/s.yaml:*: case 'bad': field 'use_case': {message}"]
    )
    assert "Traceback" not in result.stdout.str()


def test_profiles_pass_and_bad_profiles_file(project: pytest.Pytester) -> None:
    _profiles(project)
    write_suite(
        project, "s", "use_case: production\ncases:\n  - {id: a, prompt: x, quality: high}\n"
    )
    project.runpytest("--collect-only").assert_outcomes()
    _profiles(project, "exploration: {max_nn: 1}\n")
    result = project.runpytest("--collect-only")
    result.stdout.fnmatch_lines(
        [
            "prompt_suites/profiles.yaml:1: profile 'exploration': unknown key 'max_nn' (did you mean 'max_n'?)*"
        ]
    )


def test_shipped_profiles_are_used_by_example_suites() -> None:
    from pytest_imagegen.suites.profiles import load_profiles

    root = Path(__file__).parent.parent / "prompt_suites"
    profiles = load_profiles(root / "profiles.yaml")
    assert {"exploration", "production"} <= set(profiles.profiles)
    used = {
        line.split(":", 1)[1].strip()
        for path in root.glob("*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("use_case:")
    }
    assert {"exploration", "production"} <= used


# -------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "args, message",
    [
        (["--imagegen-budget=abc"], "*--imagegen-budget: 'abc' is not a number*"),
        (["--imagegen-budget=-1"], "*--imagegen-budget: must be at least 0, got -1*"),
        (
            ["--imagegen-cost-baseline=b.json", "--imagegen-max-cost-increase=5x"],
            "*--imagegen-max-cost-increase: '5x' is not an amount; use USD like 0.50 or a percentage like 10%*",
        ),
        (["--imagegen-max-cost-increase=5%"], "*needs --imagegen-cost-baseline=PATH.json*"),
        (
            ["--imagegen-cost-baseline=nope.json"],
            "*--imagegen-cost-baseline *nope.json: file not found*",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(
    project: pytest.Pytester, args: list[str], message: str
) -> None:
    (project.path / "b.json").write_text('{"cases": []}')
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
