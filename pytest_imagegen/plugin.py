"""pytest glue for pytest-imagegen: options, ini keys, collection, reporting hooks.

Logic lives in plain modules (suite, runner, client, costs, report); this
module only wires them into pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .costs import PriceTable, format_usd
from .errors import ImagegenError
from .runner import RunContext
from .settings import (
    DRIFT_MODES,
    RECORD_MODES,
    Settings,
    parse_number,
    resolve_base_url,
)

if TYPE_CHECKING:
    from .marker import Imagegen
    from .profiles import Profiles
    from .report import CostDiff, CostLimit
    from .runner import CaseResult
    from .suite import CaseSpec

SKIP_DIRS = frozenset({"cassettes", "baselines", ".imagegen"})


class ImagegenState:
    """Per-session state (in ``config.stash``), also registered as a plugin for reporting."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        prices: PriceTable,
        explicit: frozenset[Path],
    ) -> None:
        self.config = config
        self.settings = settings
        self.explicit = explicit
        self.ctx = RunContext(settings=settings, prices=prices)
        self.fake_server: Any = None
        self.results: list[dict[str, Any]] = []
        self.is_worker = hasattr(config, "workerinput")
        # the xdist controller runs no test: nothing to warm up there
        self.is_controller_of_workers = not self.is_worker and bool(
            getattr(config.option, "numprocesses", None)
        )
        self.owns_budget = False
        self.report_path: Path | None = None
        self.markdown_path: Path | None = None
        self.cost_baseline: dict[str, float] | None = None
        self.cost_limit: CostLimit | None = None
        self.cost_diff: CostDiff | None = None
        self.estimated: list[dict[str, Any]] = []
        # suite file nodeid -> (baseline file, every case id), filled by SuiteFile.collect
        self.suite_files: dict[str, tuple[str, list[str]]] = {}
        # baseline file -> every case id, for suite files collected in full (prune-safe)
        self.full_files: dict[str, list[str]] | None = None
        self.worker_full_files: list[dict[str, list[str]]] = []
        self.finish_lines: list[str] = []
        self._profiles: dict[Path, Profiles] = {}
        self.exit_stack = contextlib.ExitStack()  # undone at unconfigure

    @property
    def suite_dirs(self) -> tuple[Path, ...]:
        return self.settings.suite_dirs

    def profile_check(self, path: Path) -> Callable[[CaseSpec], str | None]:
        """A ``check_case`` for suites under ``path``'s suites root (profiles read lazily)."""

        def check(spec: CaseSpec) -> str | None:
            if spec.use_case is None:
                return None
            from .profiles import PROFILES_FILE, load_profiles

            root = self.ctx.suites_root(path)
            if root not in self._profiles:
                file = root / PROFILES_FILE
                self._profiles[root] = load_profiles(file, _relative(self.config, file))
            return self._profiles[root].checker(self.ctx.prices)(spec)

        return check

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .items import CaseItem

        selected: dict[str, int] = {}
        for item in session.items:
            if isinstance(item, CaseItem) and item.parent is not None:
                selected[item.parent.nodeid] = selected.get(item.parent.nodeid, 0) + 1
        self.full_files = {
            baseline: ids
            for nodeid, (baseline, ids) in self.suite_files.items()
            if selected.get(nodeid, 0) == len(ids)
        }
        if self.is_worker:
            self.config.workeroutput["imagegen_full_files"] = self.full_files  # type: ignore[attr-defined]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Runs on the xdist controller too: the data travels on the report.
        data = getattr(report, "imagegen", None)
        if data is not None and report.when == "call":
            self.results.append(data)
            if not self.is_worker:
                # hash accepted images now, while the workers wait on the network
                from .perceptual import complete_hashes

                for update in data.get("baseline_updates") or []:
                    for image in update["images"]:
                        with contextlib.suppress(ImagegenError):  # reported when written
                            complete_hashes(image, Path(str(update["images_dir"])))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if not self.config.getoption("imagegen_estimate"):
            return None
        from .estimate import estimate, render
        from .items import CaseItem

        cases = [(i.nodeid, i.spec) for i in session.items if isinstance(i, CaseItem)]
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        est = estimate(cases, self.ctx)
        self.estimated = [{"nodeid": r.nodeid, "list_cost": r.list_cost} for r in est.rows]
        if tr is not None:
            tr.write_sep("-", "imagegen estimate")
            for line in render(est, per_case=self.config.get_verbosity() >= 0):
                tr.write_line(line)
        return True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or self.config.getoption("imagegen_ledger"):
            return
        from . import report

        estimating = self.config.getoption("imagegen_estimate")
        if self.cost_baseline is not None:
            costs = self.estimated if estimating else self.results
            self.cost_diff = report.compare(self.cost_baseline, costs)
            if (
                self.cost_limit is not None
                and self.cost_diff.exceeds(self.cost_limit)
                and session.exitstatus == pytest.ExitCode.OK
            ):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if estimating:
            return
        self._finish_baselines()
        extra: dict[str, Any] = {}
        if self.cost_diff is not None:
            extra["cost_change"] = {
                "old_total": self.cost_diff.old_total,
                "new_total": self.cost_diff.new_total,
                "change": self.cost_diff.change,
            }
        redactor = self.ctx.redactor
        if self.report_path is not None:
            report.write_json(self.report_path, report.json_report(self.results, extra), redactor)
        if self.markdown_path is not None or os.environ.get("GITHUB_STEP_SUMMARY"):
            from .files import append_text, write_text

            text = report.markdown(self.results, self.cost_diff, self.cost_limit)
            if self.markdown_path is not None:
                write_text(self.markdown_path, text, redactor)
            step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if step_summary:
                append_text(Path(step_summary), text, redactor)

    def _finish_baselines(self) -> None:
        from . import drift

        full = self.full_files
        if self.worker_full_files:  # xdist: a file is complete only if every worker saw it so
            full = dict(self.worker_full_files[0])
            for other in self.worker_full_files[1:]:
                full = {k: v for k, v in full.items() if other.get(k) == v}
        updates = [u for r in self.results for u in r.get("baseline_updates") or []]
        prune = full if self.settings.update_baselines else None
        if updates or prune:
            try:
                self.finish_lines += drift.apply_updates(updates, prune, self.ctx.redactor)
            except ImagegenError as exc:
                self.finish_lines.append(f"baselines NOT written: {exc}")
        if self.settings.html_dir is not None:
            from . import htmlreport

            index = htmlreport.write(self.settings.html_dir, self.results, self.ctx.redactor)
            self.finish_lines.append(f"visual review: {_relative(self.config, index)}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        estimating = self.config.getoption("imagegen_estimate")
        budget = self.ctx.budget
        if (estimating or not self.results) and self.cost_diff is None:
            return
        from .report import gate_lines, summarize, terminal_lines

        terminalreporter.write_sep("-", "imagegen")
        mask = self.ctx.redactor.mask
        if not estimating:
            for line in terminal_lines(summarize(self.results)):
                terminalreporter.write_line(line)
            notes = dict.fromkeys(n for r in self.results for n in r.get("notes") or [])
            for line in [*notes, *self.finish_lines]:
                terminalreporter.write_line(mask(line))
        if budget is not None and self.owns_budget:
            b = budget.snapshot()
            refused = int(b.get("refused", 0))
            terminalreporter.write_line(
                f"budget: {format_usd(b['limit'])}  spent: {format_usd(b['spent'])}  "
                f"left: {format_usd(max(b['limit'] - b['spent'], 0.0))}"
                + (f"  requests refused: {refused}" if refused else "")
            )
        if self.cost_diff is not None:
            exceeded = self.cost_limit is not None and self.cost_diff.exceeds(self.cost_limit)
            for line in gate_lines(self.cost_diff, self.cost_limit):
                terminalreporter.write_line(line, red=exceeded, bold=exceeded)
        if self.report_path is not None:
            terminalreporter.write_line(f"cost report: {_relative(self.config, self.report_path)}")
        if self.fake_server is not None:
            terminalreporter.write_line(
                "(--imagegen-fake-server: every images request of this session went to the "
                "built-in fake server; nothing was billed, and the ledger keeps it apart)"
            )

    def fail(self, exc: BaseException | str) -> NoReturn:
        """Fail the running test with a plugin message: no traceback, no API key."""
        pytest.fail(self.ctx.redactor.mask(str(exc)), pytrace=False)

    def mask_report(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        """Last line of defence: no API key in what pytest prints or writes (-l, -vvv,
        JUnit XML, captured output), whatever object's repr carried it."""
        redactor = self.ctx.redactor
        if not redactor:
            return
        longrepr = report.longrepr
        if longrepr is not None:
            text = str(longrepr)
            if redactor.find(text):
                report.longrepr = redactor.mask(text)
        report.sections = [(name, redactor.mask(body)) for name, body in report.sections]
        if isinstance(report, pytest.TestReport):
            report.user_properties = [
                (redactor.mask(str(k)), redactor.mask_data(v)) for k, v in report.user_properties
            ]


class XdistHooks:
    """Registered only when pytest-xdist is active: hands the session budget to workers."""

    def __init__(self, state: ImagegenState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        if self.state.ctx.budget is not None:
            node.workerinput["imagegen_budget"] = str(self.state.ctx.budget.path)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        full = getattr(node, "workeroutput", {}).get("imagegen_full_files")
        if full is not None:
            self.state.worker_full_files.append(full)


def _relative(config: pytest.Config, path: Path) -> str:
    """``path`` relative to the invocation directory when inside it, else absolute."""
    from .items import display_path

    relative = display_path(config, path)
    return str(path) if relative.startswith("..") else relative


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
        help="send every images and chat request of the session (suites, the imagegen fixture, "
        "and marked tests whatever base URL their client names) to the built-in fake images "
        "server on 127.0.0.1 (no key needed, nothing billed; ledger lines marked fake): for "
        "demos, trying suites and recording example cassettes.",
    )
    group.addoption(
        "--imagegen-budget",
        action="store",
        default=None,
        metavar="USD",
        help="session spending cap in USD across all workers: each live request reserves its "
        "list cost before it is sent; a request that does not fit is not sent and its test fails.",
    )
    group.addoption(
        "--imagegen-estimate",
        action="store_true",
        default=False,
        help="print each selected case's list cost and the totals for a full live run and for "
        "a `once` recording (cases without a fresh cassette); send nothing, run no test.",
    )
    group.addoption(
        "--imagegen-report",
        action="store",
        default=None,
        metavar="PATH.json",
        help="write a JSON cost report (per case: list/actual cost, cassette status, outcome); "
        "use it later as --imagegen-cost-baseline.",
    )
    group.addoption(
        "--imagegen-markdown",
        action="store",
        default=None,
        metavar="PATH",
        help="write the cost report as Markdown (also appended to $GITHUB_STEP_SUMMARY when set).",
    )
    group.addoption(
        "--imagegen-cost-baseline",
        action="store",
        default=None,
        metavar="PATH.json",
        help="an earlier --imagegen-report (e.g. from the main branch): print per-case cost "
        "changes and the total change.",
    )
    group.addoption(
        "--imagegen-max-cost-increase",
        action="store",
        default=None,
        metavar="USD|N%",
        help="with --imagegen-cost-baseline: fail the session when the suite's list cost grows by "
        "more than this amount (e.g. 0.50) or percentage (e.g. 10%%).",
    )
    group.addoption(
        "--imagegen-block-network",
        action="store_true",
        default=False,
        help="fail any images API request made by a test that is neither a suite case nor "
        "marked @pytest.mark.imagegen (nothing is sent); marked tests are recorded/replayed.",
    )
    group.addoption(
        "--imagegen-ledger",
        action="store_true",
        default=False,
        help="print the spend ledger (<suites root>/.imagegen/ledger.jsonl) per category and case: "
        "iterations (distinct prompts), requests, spend; run no tests.",
    )
    group.addoption(
        "--imagegen-drift",
        action="store",
        default="fail",
        choices=DRIFT_MODES,
        help="visual drift against accepted baselines: fail (default), warn (a warning, the "
        "test passes) or off (no comparison).",
    )
    group.addoption(
        "--imagegen-update-baselines",
        action="store_true",
        default=False,
        help="accept the current images of the selected tests as their baselines (replacing "
        "the accepted ones). Entries of deleted cases are removed for suite files collected "
        "in full (no -k, no deselection, no collection error).",
    )
    group.addoption(
        "--imagegen-add-baselines",
        action="store_true",
        default=False,
        help="like --imagegen-update-baselines, but keep the accepted images and add the "
        "current ones as more samples (for cases whose look may legitimately vary).",
    )
    group.addoption(
        "--imagegen-html",
        action="store",
        default=None,
        metavar="DIR",
        help="write DIR/index.html: baseline and current images side by side, distances, "
        "costs and status per case, failures first (self-contained, images copied into DIR).",
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
        "imagegen_drift_phash",
        default="10",
        help="default phash threshold (Hamming distance, 0-64) for visual drift (default 10)",
    )
    parser.addini(
        "imagegen_drift_colorhash",
        default="4",
        help="default colorhash threshold (Hamming distance) for visual drift (default 4)",
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
    thresholds = {}
    for algo in ("phash", "colorhash"):
        value = parse_number(
            config.getini(f"imagegen_drift_{algo}"), f"ini imagegen_drift_{algo}", minimum=0
        )
        if value is not None and value != int(value):
            raise ImagegenError(f"ini imagegen_drift_{algo}: must be a whole number, got {value:g}")
        thresholds[algo] = int(value) if value is not None else (10 if algo == "phash" else 4)
    html_dir = config.getoption("imagegen_html")
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
        project_root=root.resolve(),
        drift_mode=config.getoption("imagegen_drift"),
        drift_thresholds=thresholds,
        update_baselines=(
            "add"
            if config.getoption("imagegen_add_baselines")
            else "replace"
            if config.getoption("imagegen_update_baselines")
            else None
        ),
        html_dir=(config.invocation_params.dir / html_dir).resolve() if html_dir else None,
    )
    prices_file = config.getini("imagegen_prices")
    prices = PriceTable.load(
        (root / prices_file) if prices_file else None,
        multiplier if multiplier is not None else 1.0,
    )
    invocation = config.invocation_params.dir
    explicit = frozenset((invocation / arg.split("::")[0]).resolve() for arg in config.args if arg)
    state = ImagegenState(config, settings, prices, explicit)
    _configure_costs(config, state, invocation)
    if config.getoption("imagegen_fake_server"):
        from .fakeserver import FakeImagesServer

        state.fake_server = FakeImagesServer().start()
        state.settings = state.ctx.settings = dataclasses.replace(
            settings,
            base_url=state.fake_server.url,
            base_url_source="--imagegen-fake-server",
            fake_server=True,
        )
        state.ctx.environ = {**os.environ, "IMAGEGEN_API_KEY": "fake-server-key"}
        from .guard import FakeRoute, rerouted

        state.exit_stack.enter_context(rerouted(FakeRoute(state.fake_server.url)))
    return state


def _configure_costs(config: pytest.Config, state: ImagegenState, invocation: Path) -> None:
    """Budget, reports and the cost gate from their options."""
    from .budget import SessionBudget

    budget = parse_number(config.getoption("imagegen_budget"), "--imagegen-budget", minimum=0)
    if state.is_worker:
        path = config.workerinput.get("imagegen_budget")  # type: ignore[attr-defined]
        if path:
            state.ctx.budget = SessionBudget(Path(path))
    elif budget is not None:
        state.ctx.budget = SessionBudget.create(budget)
        state.owns_budget = True
    for attr, option in (
        ("report_path", "imagegen_report"),
        ("markdown_path", "imagegen_markdown"),
    ):
        value = config.getoption(option)
        if value:
            setattr(state, attr, (invocation / value).resolve())
    limit = config.getoption("imagegen_max_cost_increase")
    baseline = config.getoption("imagegen_cost_baseline")
    from . import report

    if limit is not None:
        state.cost_limit = report.parse_cost_limit(limit)
        if not baseline:
            raise ImagegenError(
                "--imagegen-max-cost-increase needs --imagegen-cost-baseline=PATH.json "
                "(a report from an earlier run, e.g. of the main branch)"
            )
    if baseline and not state.is_worker:
        state.cost_baseline = report.load_baseline((invocation / baseline).resolve())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "imagegen(max_cost=None, cassette=None): record and replay the test's image API calls "
        "(httpx, httpx2, openai SDK) in a cassette, with a per-request cost ceiling in USD",
    )
    try:
        state = _build_state(config)
    except ImagegenError as exc:
        raise pytest.UsageError(f"pytest-imagegen: {exc}") from None
    config.stash[state_key] = state
    config.pluginmanager.register(state, "imagegen-state")
    if config.getoption("imagegen_estimate") or config.getoption("imagegen_ledger"):
        # nothing runs: keep pytest-xdist from starting workers
        config.option.dist = "no"
        config.option.tx = []
    else:
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(state), "imagegen-xdist")
        if state.settings.record_mode != "none" and not state.is_controller_of_workers:
            from . import warmup

            warmup.start()  # overlaps imports with collection and the first request


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("imagegen_ledger"):
        from _pytest.main import wrap_session

        return wrap_session(config, _show_ledger)
    return None


def _show_ledger(config: pytest.Config, session: pytest.Session) -> int:
    from . import ledger

    state = get_state(config)
    tr: Any = config.pluginmanager.get_plugin("terminalreporter")
    roots = [*state.suite_dirs, state.settings.project_root or _ini_dir(config).resolve()]
    paths = [ledger.ledger_path(root) for root in dict.fromkeys(roots)]
    for path in [p for p in paths if p.is_file()] or paths[:1]:
        entries, bad = ledger.read(path)
        tr.write_sep("-", f"imagegen ledger: {_relative(config, path)}")
        for line in ledger.render(entries):
            tr.write_line(line)
        if bad:
            tr.write_line(f"skipped unreadable lines: {', '.join(map(str, bad[:10]))}", yellow=True)
    return 0


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is not None:
        state.exit_stack.close()
        state.ctx.close()
        if state.owns_budget and state.ctx.budget is not None:
            state.ctx.budget.remove()
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
    report = outcome.get_result()
    state = get_state(item.config)
    state.mask_report(report)
    result = getattr(item, "result", None) or item.stash.get(result_key, None)
    if call.when == "call" and result is not None and result.list_cost is not None:
        result.outcome = report.outcome
        report.imagegen = state.ctx.redactor.mask_data(result.to_dict())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    state = collector.config.stash.get(state_key, None)
    if state is not None:
        state.mask_report(outcome.get_result())


result_key = pytest.StashKey["CaseResult"]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    from .items import CaseItem, report_costs, warn_drift

    if isinstance(item, CaseItem):
        return (yield)
    state = get_state(item.config)
    marker = item.get_closest_marker("imagegen")
    if marker is None and "imagegen" not in getattr(item, "fixturenames", ()):
        if not item.config.getoption("imagegen_block_network"):
            return (yield)
        from .guard import blocker

        with blocker(item.nodeid, state.fail):
            return (yield)
    from .marker import recording_session, test_cassette_path, test_images_dir

    kwargs = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(kwargs) - {"max_cost", "cassette"})
    if unknown:
        state.fail(
            f"@pytest.mark.imagegen: unknown argument {', '.join(unknown)}; allowed: max_cost, cassette"
        )
    max_cost = kwargs.get("max_cost", state.settings.default_max_cost)
    if max_cost is not None and (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or not math.isfinite(max_cost)
        or max_cost <= 0
    ):
        state.fail(
            f"@pytest.mark.imagegen: max_cost must be a finite number of USD > 0, got {max_cost!r}"
        )
    result = item.stash.get(result_key, None) or _marker_result(item)  # the fixture's, if any
    item.stash[result_key] = result
    session = recording_session(
        ctx=state.ctx,
        result=result,
        cassette_path=test_cassette_path(item.path, item.name, kwargs.get("cassette")),
        images_dir=test_images_dir(item.path),
        max_cost=max_cost,
        ledger_root=state.ctx.suites_root(item.path),
        abort=state.fail,
    )
    try:
        with session as guard:
            fixture = getattr(item, "funcargs", {}).get("imagegen")
            if fixture is not None:
                fixture.guard = guard
            try:
                return (yield)
            finally:
                if fixture is not None:
                    fixture.guard = None
                if result.list_cost is not None:
                    report_costs(item, result)
                warn_drift(result)
    except ImagegenError as exc:  # opening or saving the cassette: a message, no traceback
        state.fail(exc)


def _marker_result(item: pytest.Item) -> CaseResult:
    from .runner import CaseResult

    return CaseResult(
        nodeid=item.nodeid,
        suite=item.path.stem,
        category=None,
        model="",
        size="",
        quality=None,
        n=0,
    )


@pytest.fixture
def imagegen(request: pytest.FixtureRequest) -> Imagegen:
    """Generate images inside the test with cassettes, cost ceiling, budget and drift checks.

    ``imagegen.generate(prompt, model=..., size=..., quality=..., n=..., **params)`` returns an
    :class:`~pytest_imagegen.ImageResult`; ``imagegen.assert_no_drift(result, key=...,
    phash=..., colorhash=...)`` compares it with the accepted baseline.
    """
    from .marker import Imagegen

    state = get_state(request.config)
    node = request.node
    result = node.stash.get(result_key, None) or _marker_result(node)
    node.stash[result_key] = result
    return Imagegen(
        ctx=state.ctx,
        nodeid=node.nodeid,
        module=node.path,
        test_name=node.name,
        result=result,
        fail=state.fail,
    )
