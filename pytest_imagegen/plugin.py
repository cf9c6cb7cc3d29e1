"""pytest glue for pytest-imagegen: options, ini keys, collection, reporting hooks.

Logic lives in plain modules (suite, runner, client, costs, report); this
module only wires them into pytest.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from .costs import PriceTable
from .errors import ImagegenError
from .report import summarize, terminal_lines
from .runner import RunContext
from .settings import RECORD_MODES, Settings, parse_number, resolve_base_url

SKIP_DIRS = frozenset({"cassettes", "baselines", ".imagegen"})


class ImagegenState:
    """Per-session state (in ``config.stash``), also registered as a plugin for reporting."""

    def __init__(
        self,
        settings: Settings,
        prices: PriceTable,
        explicit: frozenset[Path],
    ) -> None:
        self.settings = settings
        self.explicit = explicit
        self.ctx = RunContext(settings=settings, prices=prices)
        self.fake_server: Any = None
        self.results: list[dict[str, Any]] = []

    @property
    def suite_dirs(self) -> tuple[Path, ...]:
        return self.settings.suite_dirs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Runs on the xdist controller too: the data travels on the report.
        data = getattr(report, "imagegen", None)
        if data is not None and report.when == "call":
            self.results.append(data)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.write_sep("-", "imagegen")
        for line in terminal_lines(summarize(self.results)):
            terminalreporter.write_line(line)
        if self.fake_server is not None:
            terminalreporter.write_line(
                "(--imagegen-fake-server: requests went to the built-in fake server; "
                "figures are list prices, nothing was billed)"
            )


state_key = pytest.StashKey[ImagegenState]()


def get_state(config: pytest.Config) -> ImagegenState:
    return config.stash[state_key]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("imagegen", "image generation prompt suites (pytest-imagegen)")
    group.addoption(
        "--imagegen-record-mode",
        action="store",
        default="none",
        choices=RECORD_MODES,
        help="cassette mode: none (default: replay only, never touch the network), "
        "once (record missing cassettes), new_episodes (record missing, replace stale), "
        "all (re-record everything selected; spends money).",
    )
    group.addoption(
        "--imagegen-base-url",
        action="store",
        default=None,
        metavar="URL",
        help="OpenAI-compatible images API base URL, e.g. https://api.wisgate.ai/v1 "
        "(precedence: this option > $IMAGEGEN_BASE_URL > ini imagegen_base_url > default). "
        "The API key is read only from $IMAGEGEN_API_KEY, $WISGATE_API_KEY or $OPENAI_API_KEY.",
    )
    group.addoption(
        "--imagegen-fake-server",
        action="store_true",
        default=False,
        help="send live requests to the built-in fake images server on 127.0.0.1 instead of "
        "the real API (no key needed, nothing billed): for demos, trying suites and recording "
        "example cassettes.",
    )
    parser.addini(
        "imagegen_suites",
        type="args",
        default=["prompt_suites"],
        help="directories (relative to the ini file) whose YAML files with a top-level "
        "`cases:` key are prompt suites (default: prompt_suites)",
    )
    parser.addini(
        "imagegen_base_url", default="", help="images API base URL (see --imagegen-base-url)"
    )
    parser.addini(
        "imagegen_timeout", default="180", help="seconds before a request times out (default 180)"
    )
    parser.addini(
        "imagegen_max_retries",
        default="3",
        help="retries for 429 rate limits, 5xx, timeouts and dropped connections (default 3)",
    )
    parser.addini(
        "imagegen_backoff",
        default="1.0",
        help="first retry delay in seconds, doubled each retry, unless Retry-After says otherwise",
    )
    parser.addini(
        "imagegen_prices",
        default="",
        help="YAML price file merged over the shipped price table (e.g. your gateway's prices)",
    )
    parser.addini(
        "imagegen_price_multiplier",
        default="1.0",
        help="markup applied to every price (default 1.0)",
    )
    parser.addini(
        "imagegen_default_max_cost",
        default="",
        help="USD cost ceiling for cases without max_cost (default: no ceiling)",
    )


def _ini_dir(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


def _build_state(config: pytest.Config) -> ImagegenState:
    base_url, source = resolve_base_url(
        config.getoption("imagegen_base_url"),
        os.environ,
        config.getini("imagegen_base_url") or None,
    )
    timeout = parse_number(config.getini("imagegen_timeout"), "ini imagegen_timeout", positive=True)
    retries = parse_number(
        config.getini("imagegen_max_retries"), "ini imagegen_max_retries", minimum=0
    )
    if retries is not None and retries != int(retries):
        raise ImagegenError(f"ini imagegen_max_retries: must be a whole number, got {retries:g}")
    backoff = parse_number(config.getini("imagegen_backoff"), "ini imagegen_backoff", minimum=0)
    multiplier = parse_number(
        config.getini("imagegen_price_multiplier"), "ini imagegen_price_multiplier", positive=True
    )
    max_cost = parse_number(
        config.getini("imagegen_default_max_cost"), "ini imagegen_default_max_cost", positive=True
    )
    root = _ini_dir(config)
    suite_dirs = tuple((root / d).resolve() for d in config.getini("imagegen_suites"))
    settings = Settings(
        record_mode=config.getoption("imagegen_record_mode"),
        base_url=base_url,
        base_url_source=source,
        timeout=timeout if timeout is not None else 180.0,
        max_retries=int(retries) if retries is not None else 3,
        backoff=backoff if backoff is not None else 1.0,
        default_max_cost=max_cost,
        suite_dirs=suite_dirs,
    )
    prices_file = config.getini("imagegen_prices")
    prices = PriceTable.load(
        (root / prices_file) if prices_file else None,
        multiplier if multiplier is not None else 1.0,
    )
    invocation = config.invocation_params.dir
    explicit = frozenset((invocation / arg.split("::")[0]).resolve() for arg in config.args if arg)
    state = ImagegenState(settings, prices, explicit)
    if config.getoption("imagegen_fake_server"):
        from .fakeserver import FakeImagesServer

        state.fake_server = FakeImagesServer().start()
        state.settings = state.ctx.settings = dataclasses.replace(
            settings, base_url=state.fake_server.url, base_url_source="--imagegen-fake-server"
        )
        state.ctx.environ = {**os.environ, "IMAGEGEN_API_KEY": "fake-server-key"}
    return state


def pytest_configure(config: pytest.Config) -> None:
    try:
        state = _build_state(config)
    except ImagegenError as exc:
        raise pytest.UsageError(f"pytest-imagegen: {exc}") from None
    config.stash[state_key] = state
    config.pluginmanager.register(state, "imagegen-state")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is not None:
        state.ctx.close()
        if state.fake_server is not None:
            state.fake_server.stop()
        config.pluginmanager.unregister(state)


def _under(path: Path, dirs: tuple[Path, ...]) -> Path | None:
    for d in dirs:
        if path == d or d in path.parents:
            return d
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in SKIP_DIRS:
        state = config.stash.get(state_key, None)
        if state is not None and _under(collection_path.resolve(), state.suite_dirs):
            return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from .items import SuiteFile
    from .suite import looks_like_suite

    state = get_state(parent.config)
    resolved = file_path.resolve()
    explicit = resolved in state.explicit
    root = _under(resolved, state.suite_dirs)
    if not explicit:
        if root is None or SKIP_DIRS.intersection(resolved.relative_to(root).parts[:-1]):
            return None
        try:
            if not looks_like_suite(resolved.read_bytes()):
                return None
        except OSError:
            return None
    return SuiteFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    result = getattr(item, "result", None)
    if call.when == "call" and result is not None:
        report = outcome.get_result()
        result.outcome = report.outcome
        report.imagegen = result.to_dict()
