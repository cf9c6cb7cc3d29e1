"""Per-session state of the plugin and what it reports (syrupy's ``session.py``).

:class:`ImagegenState` lives in ``config.stash`` and is registered as a plugin:
it owns the run context (settings, prices, budget, clients), collects every
case's result (travelling on test reports, so the xdist controller sees all
of them), and writes the reports, baselines and terminal summary at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .costs import PriceTable, format_usd
from .errors import ImagegenError
from .options import ini_dir, read_settings
from .runner import RunContext
from .settings import Settings, parse_number

if TYPE_CHECKING:
    from .marker import Imagegen
    from .profiles import Profiles
    from .report import CostDiff, CostLimit
    from .runner import CaseResult
    from .suite import CaseSpec

SKIP_DIRS = frozenset({"cassettes", "baselines", ".imagegen"})


def display_path(config: pytest.Config, path: os.PathLike[str]) -> str:
    """``path`` relative to the invocation directory (``..`` allowed)."""
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return os.fspath(path)


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
        self._results: dict[str, dict[str, Any]] = {}  # nodeid -> the case's figures
        self.is_worker = hasattr(config, "workerinput")
        # the xdist controller runs no test: nothing to warm up there
        self.is_controller_of_workers = not self.is_worker and bool(
            getattr(config.option, "numprocesses", None)
        )
        self.owns_budget = False
        self.owns_limiter = False
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
        self.shared_cassettes: dict[Path, list[str]] = {}

    @property
    def results(self) -> list[dict[str, Any]]:
        """One result per test: a rerun (pytest-rerunfailures) replaces the earlier one."""
        return list(self._results.values())

    @property
    def suite_dirs(self) -> tuple[Path, ...]:
        return self.settings.suite_dirs

    def suite_root(self, path: Path) -> Path | None:
        """The suites directory (ini ``imagegen_suites``) holding ``path``, if any."""
        for d in self.suite_dirs:
            if path == d or d in path.parents:
                return d
        return None

    def is_suite(self, file_path: Path) -> bool:
        """A YAML file named on the command line, or one with a top-level ``cases:`` under a
        suites directory (outside its cassettes and baselines)."""
        from .suite import looks_like_suite

        resolved = file_path.resolve()
        if resolved in self.explicit:
            return True
        root = self.suite_root(resolved)
        if root is None or SKIP_DIRS.intersection(resolved.relative_to(root).parts[:-1]):
            return False
        try:
            return looks_like_suite(resolved.read_bytes())
        except OSError:
            return False

    def close(self) -> None:
        """At unconfigure: clients, the session budget file, the fake server."""
        self.exit_stack.close()
        self.ctx.close()
        if self.owns_budget and self.ctx.budget is not None:
            self.ctx.budget.remove()
        if self.owns_limiter and self.ctx.limiter is not None:
            self.ctx.limiter.remove()
        if not self.is_worker and self.ctx.session_dir is not None:
            import shutil

            shutil.rmtree(self.ctx.session_dir, ignore_errors=True)
        if self.fake_server is not None:
            self.fake_server.stop()

    def profile_check(self, path: Path) -> Callable[[CaseSpec], str | None]:
        """A ``check_case`` for suites under ``path``'s suites root (profiles read lazily)."""

        def check(spec: CaseSpec) -> str | None:
            if spec.use_case is None:
                return None
            from .profiles import PROFILES_FILE, load_profiles

            root = self.ctx.suites_root(path)
            if root not in self._profiles:
                file = root / PROFILES_FILE
                self._profiles[root] = load_profiles(file, relative(self.config, file))
            return self._profiles[root].checker(self.ctx.prices)(spec)

        return check

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._find_shared_cassettes(session.items)
        selected: dict[str, int] = {}
        for item in session.items:
            if case_spec(item) is not None and item.parent is not None:
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
            self._results.pop(str(data.get("nodeid")), None)  # a rerun goes last
            self._results[str(data.get("nodeid"))] = data
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
            self._prefetch(session)
            return None
        from .estimate import estimate, render

        cases = [(i.nodeid, spec) for i in session.items if (spec := case_spec(i)) is not None]
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        est = estimate(cases, self.ctx)
        self.estimated = [{"nodeid": r.nodeid, "list_cost": r.list_cost} for r in est.rows]
        if tr is not None:
            tr.write_sep("-", "imagegen estimate")
            for line in render(est, per_case=self.config.getoption("verbose") >= 0):
                tr.write_line(line)
            if self.config.getoption("imagegen_right_size"):
                from .estimate import right_size_lines

                tr.write_sep("-", "imagegen right-size estimate")
                for line in right_size_lines(est):
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
        try:
            self._write_reports(session)
        except (OSError, ImagegenError) as exc:  # the summary is still printed
            self.finish_lines.append(f"reports NOT written: {exc}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_reports(self, session: pytest.Session) -> None:
        from . import report

        self._finish_baselines()
        extra: dict[str, Any] = {}
        if self.cost_diff is not None:
            extra["cost_change"] = {
                "old_total": self.cost_diff.old_total,
                "new_total": self.cost_diff.new_total,
                "change": self.cost_diff.change,
            }
        redactor = self.ctx.redactor
        groups = self.right_size_groups()
        if groups is not None:
            extra["right_size"] = [g.to_dict() for g in groups]
        if self.report_path is not None:
            report.write_json(self.report_path, report.json_report(self.results, extra), redactor)
        if self.markdown_path is not None or os.environ.get("GITHUB_STEP_SUMMARY"):
            from .files import append_text, write_text

            text = report.markdown(self.results, self.cost_diff, self.cost_limit, groups)
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

            index = htmlreport.write(
                self.settings.html_dir, self.results, self.ctx.redactor, self.right_size_groups()
            )
            self.finish_lines.append(f"visual review: {relative(self.config, index)}")

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
            terminalreporter.write_line(f"cost report: {relative(self.config, self.report_path)}")
        if self.fake_server is not None:
            terminalreporter.write_line(
                "(--imagegen-fake-server: every images request of this session went to the "
                "built-in fake server; nothing was billed, and the ledger keeps it apart)"
            )
        groups = None if estimating else self.right_size_groups()
        if groups:
            from .rightsize import terminal_lines as right_size_lines

            terminalreporter.write_sep("-", "imagegen right-size")
            for line in right_size_lines(groups):
                terminalreporter.write_line(mask(line))

    def _prefetch(self, session: pytest.Session) -> None:
        """``--imagegen-concurrency=N``: record what the tests will send, N at a time."""
        s = self.settings
        if s.concurrency <= 1 or s.record_mode == "none" or self.is_controller_of_workers:
            return
        from . import prefetch

        worker = None
        if self.is_worker:
            given = self.config.workerinput  # type: ignore[attr-defined]
            worker = (int(str(given["workerid"]).lstrip("gw") or 0), int(given["workercount"]))
        cases = [(i.nodeid, spec) for i in session.items if (spec := case_spec(i)) is not None]
        # split the selected cases first (the same list on every worker), then keep those
        # whose request the record mode will send
        mine = [c for c in prefetch.share(cases, worker) if prefetch.will_send(c[1], self.ctx)]
        if not mine:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        write, live = prefetch.terminal_writer(tr, self.config.getoption("verbose") < -1)
        progress = prefetch.Progress(len(mine), write, live)
        prefetch.run(mine, self.ctx, s.concurrency, self.ctx.session_dir, progress)

    # -- tests' own code: the imagegen marker and fixture
    def _find_shared_cassettes(self, items: list[pytest.Item]) -> None:
        """Marked tests whose cassette names meet (``test[a!]``/``test[a?]``): each would
        replace the other's recording on every run."""
        owners: dict[Path, list[str]] = {}
        for item in items:
            marker = item.get_closest_marker("imagegen")
            if case_spec(item) is not None or (
                marker is None and "imagegen" not in getattr(item, "fixturenames", ())
            ):
                continue
            from .marker import test_cassette_path

            cassette = marker.kwargs.get("cassette") if marker else None
            path = test_cassette_path(
                item.path, item.name, cassette if isinstance(cassette, str) else None
            )
            owners.setdefault(path, []).append(item.nodeid)
        self.shared_cassettes = {p: ids for p, ids in owners.items() if len(ids) > 1}

    @contextlib.contextmanager
    def guard_test(self, item: pytest.Item) -> Iterator[None]:
        """Around a test's call: record/replay and guard its images requests when it is
        marked or uses the fixture; with ``--imagegen-block-network``, refuse them otherwise."""
        marker = item.get_closest_marker("imagegen")
        if case_spec(item) is not None or (
            marker is None and "imagegen" not in getattr(item, "fixturenames", ())
        ):
            if (
                case_spec(item) is None
                and self.config.getoption("imagegen_block_network")
                and item.get_closest_marker("vcr") is None  # pytest-recording's own tests
            ):
                from .guard import blocker

                with blocker(item.nodeid, self.fail):
                    yield
                return
            yield
            return
        from .marker import marker_options, recording_session, test_cassette_path, test_images_dir

        try:
            max_cost, cassette = marker_options(
                dict(marker.kwargs) if marker else {}, self.settings.default_max_cost
            )
        except ImagegenError as exc:
            self.fail(exc)
        path = test_cassette_path(item.path, item.name, cassette)
        shared = [n for n in self.shared_cassettes.get(path, []) if n != item.nodeid]
        if shared:
            self.fail(
                f"{item.nodeid} and {', '.join(shared)} would use the same cassette file "
                f"{relative(self.config, path)} (their names differ only in characters a file "
                "name cannot hold); give each its own with @pytest.mark.imagegen(cassette=...)"
            )
        result = item.stash.get(result_key, None) or marker_result(item)  # the fixture's
        item.stash[result_key] = result
        session = recording_session(
            ctx=self.ctx,
            result=result,
            cassette_path=path,
            images_dir=test_images_dir(item.path),
            max_cost=max_cost,
            ledger_root=self.ctx.suites_root(item.path),
            abort=self.fail,
        )
        try:
            with session as guard:
                fixture = getattr(item, "funcargs", {}).get("imagegen")
                if fixture is not None:
                    fixture.guard = guard
                try:
                    yield
                finally:
                    if fixture is not None:
                        fixture.guard = None
                    if result.list_cost is not None:
                        report_costs(item, result)
                    warn_drift(result)
        except ImagegenError as exc:  # opening or saving the cassette: a message, no traceback
            self.fail(exc)

    def fixture_for(self, node: Any) -> Imagegen:
        """The ``imagegen`` fixture's object for the test ``node``."""
        from .marker import Imagegen

        result = node.stash.get(result_key, None) or marker_result(node)
        node.stash[result_key] = result
        return Imagegen(
            ctx=self.ctx,
            nodeid=node.nodeid,
            module=node.path,
            test_name=node.name,
            result=result,
            fail=self.fail,
        )

    def made_report(self, item: pytest.Item, when: str, report: pytest.TestReport) -> None:
        """Mask the report; put the case's figures on the call report (they travel to the
        xdist controller with it)."""
        self.mask_report(report)
        result = getattr(item, "result", None) or item.stash.get(result_key, None)
        if when == "call" and result is not None and result.list_cost is not None:
            result.outcome = report.outcome
            report.imagegen = self.ctx.redactor.mask_data(result.to_dict())  # type: ignore[attr-defined]

    def right_size_groups(self) -> list[Any] | None:
        """The right-sizing groups of the run (``--imagegen-right-size``), else ``None``."""
        if not self.config.getoption("imagegen_right_size"):
            return None
        from .rightsize import groups

        return groups(self.results)

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
        ctx = self.state.ctx
        if ctx.budget is not None:
            node.workerinput["imagegen_budget"] = str(ctx.budget.path)
        node.workerinput["imagegen_session_id"] = ctx.session_id
        node.workerinput["imagegen_session_dir"] = str(ctx.session_dir or "")
        if ctx.limiter is not None:
            node.workerinput["imagegen_limiter"] = ctx.limiter.describe()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        full = getattr(node, "workeroutput", {}).get("imagegen_full_files")
        if full is not None:
            self.state.worker_full_files.append(full)


def relative(config: pytest.Config, path: Path) -> str:
    """``path`` relative to the invocation directory when inside it, else absolute."""
    shown = display_path(config, path)
    return str(path) if shown.startswith("..") else shown


state_key = pytest.StashKey[ImagegenState]()
result_key = pytest.StashKey["CaseResult"]()


def get_state(config: pytest.Config) -> ImagegenState:
    return config.stash[state_key]


def case_spec(item: pytest.Item) -> CaseSpec | None:
    """The case of a suite item (``items.CaseItem``), ``None`` for other tests."""
    from .suite import CaseSpec

    spec = getattr(item, "spec", None)
    return spec if isinstance(spec, CaseSpec) else None


def report_costs(item: pytest.Item, result: CaseResult) -> None:
    """JUnit XML properties (--junitxml), also carried to the xdist controller."""
    from .rightsize import economics, shown_cost_per_accepted

    item.user_properties.append(("list_cost", result.list_cost))
    item.user_properties.append(("actual_cost", result.actual_cost))
    e = economics(result.to_dict())
    if e["accept_rate"] is not None:
        item.user_properties.append(("accept_rate", e["accept_rate"]))
        per = shown_cost_per_accepted(e["cost_per_accepted"], result.accepted)
        item.user_properties.append(("cost_per_accepted", e["cost_per_accepted"] or per))


def warn_drift(result: CaseResult) -> None:
    """``--imagegen-drift=warn``: the drift message as a warning of the test."""
    if result.warning:
        import warnings

        from .errors import DriftWarning

        warnings.warn(DriftWarning(result.warning), stacklevel=2)


def build_state(config: pytest.Config) -> ImagegenState:
    """The session state from the options (``ImagegenError`` when one is invalid)."""
    settings, prices = read_settings(config)
    invocation = config.invocation_params.dir
    explicit = frozenset((invocation / arg.split("::")[0]).resolve() for arg in config.args if arg)
    state = ImagegenState(config, settings, prices, explicit)
    _configure_costs(config, state, invocation)
    _configure_session(config, state)
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


def _configure_session(config: pytest.Config, state: ImagegenState) -> None:
    """The session's id, scratch folder and shared rate limiter (the xdist controller makes
    them; its workers get them through ``workerinput``)."""
    from .limiter import SharedLimiter, parse_rate

    if state.is_worker:
        given = config.workerinput  # type: ignore[attr-defined]
        state.ctx.session_id = str(given.get("imagegen_session_id") or "")
        folder = given.get("imagegen_session_dir")
        state.ctx.session_dir = Path(folder) if folder else None
        if given.get("imagegen_limiter"):
            state.ctx.limiter = SharedLimiter.from_description(given["imagegen_limiter"])
        return
    import tempfile
    import uuid

    state.ctx.session_id = uuid.uuid4().hex
    state.ctx.session_dir = Path(tempfile.mkdtemp(prefix="imagegen-session-"))
    per_minute = parse_rate(config.getini("imagegen_rate_limit") or None)
    inflight = parse_number(
        config.getini("imagegen_max_inflight"), "ini imagegen_max_inflight", minimum=1
    )
    if per_minute is not None or inflight is not None:
        state.ctx.limiter = SharedLimiter.create(int(inflight) if inflight else None, per_minute)
        state.owns_limiter = True


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
    if not state.is_worker:
        from .files import writable_problem

        for option, path, is_dir in (
            ("--imagegen-report", state.report_path, False),
            ("--imagegen-markdown", state.markdown_path, False),
            ("--imagegen-html", state.settings.html_dir, True),
        ):
            problem = path and writable_problem(path, directory=is_dir)
            if problem:
                raise ImagegenError(f"{option}: {problem}; choose a path you can write to")
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


def show_ledger(config: pytest.Config, session: pytest.Session) -> int:
    from . import ledger

    state = get_state(config)
    tr: Any = config.pluginmanager.get_plugin("terminalreporter")
    roots = [*state.suite_dirs, state.settings.project_root or ini_dir(config).resolve()]
    paths = [ledger.ledger_path(root) for root in dict.fromkeys(roots)]
    for path in [p for p in paths if p.is_file()] or paths[:1]:
        entries, bad = ledger.read(path)
        tr.write_sep("-", f"imagegen ledger: {relative(config, path)}")
        for line in ledger.render(entries):
            tr.write_line(line)
        if bad:
            tr.write_line(f"skipped unreadable lines: {', '.join(map(str, bad[:10]))}", yellow=True)
    return 0


def marker_result(item: pytest.Item) -> CaseResult:
    """The result of a marked (or fixture-using) test, filled in as its requests run."""
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
