"""Per-session state of the plugin (syrupy's ``session.py``).

:class:`ImagegenState` lives in ``config.stash`` and is registered as a plugin:
it owns the run context (settings, prices, budget, clients), collects every
case's result (travelling on test reports, so the xdist controller sees all
of them), and at the end has the baselines, reports and terminal summary
written by the modules that own them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .api.errors import ImagegenError
from .api.settings import Settings
from .cassettes.files import relative_to
from .money.context import RunContext
from .money.prices import PriceTable
from .options import RunOptions

if TYPE_CHECKING:
    from .pyapi.fixture import Imagegen
    from .pyapi.runtime import PythonAPI
    from .review.gate import CostDiff
    from .suites.profiles import Profiles
    from .suites.spec import CaseSpec

SKIP_DIRS = frozenset({"cassettes", "baselines", ".imagegen"})


def display_path(config: pytest.Config, path: os.PathLike[str]) -> str:
    """``path`` relative to the invocation directory (``..`` allowed)."""
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return os.fspath(path)


def relative(config: pytest.Config, path: Path) -> str:
    """``path`` relative to the invocation directory when inside it, else absolute."""
    return relative_to(config.invocation_params.dir, path)


class ImagegenState:
    """Per-session state (in ``config.stash``), also registered as a plugin for reporting."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        prices: PriceTable,
        explicit: frozenset[Path],
        options: RunOptions,
    ) -> None:
        self.config = config
        self.settings = settings
        self.explicit = explicit
        self.options = options
        self.ctx = RunContext(settings=settings, prices=prices)
        self.fake_server: Any = None
        self._results: dict[str, dict[str, Any]] = {}  # nodeid -> the case's figures
        self.is_worker = hasattr(config, "workerinput")
        # the xdist controller runs no test
        self.is_controller_of_workers = not self.is_worker and bool(
            getattr(config.option, "numprocesses", None)
        )
        self.owns_budget = False
        self.owns_limiter = False
        self.cost_baseline: dict[str, float] | None = None
        self.cost_diff: CostDiff | None = None
        self.estimated: list[dict[str, Any]] = []
        # suite file nodeid -> (baseline file, every case id), filled by SuiteFile.collect
        self.suite_files: dict[str, tuple[str, list[str]]] = {}
        # baseline file -> every case id, for suite files collected in full (prune-safe)
        self.full_files: dict[str, list[str]] | None = None
        self.worker_full_files: list[dict[str, list[str]]] = []
        self.finish_lines: list[str] = []
        self._profiles: dict[Path, Profiles] = {}
        self._python_api: PythonAPI | None = None
        self.exit_stack = contextlib.ExitStack()  # undone at unconfigure

    @property
    def results(self) -> list[dict[str, Any]]:
        """One result per test: a rerun (pytest-rerunfailures) replaces the earlier one."""
        return list(self._results.values())

    @property
    def suite_dirs(self) -> tuple[Path, ...]:
        return self.settings.suite_dirs

    @property
    def python_api(self) -> PythonAPI:
        """Marked tests and the ``imagegen`` fixture (made on first use)."""
        if self._python_api is None:
            from .pyapi.runtime import PythonAPI

            self._python_api = PythonAPI(
                self.ctx,
                self.fail,
                block_network=bool(self.config.getoption("imagegen_block_network")),
                shown=lambda path: relative(self.config, path),
            )
        return self._python_api

    def suite_root(self, path: Path) -> Path | None:
        """The suites directory (ini ``imagegen_suites``) holding ``path``, if any."""
        for d in self.suite_dirs:
            if path == d or d in path.parents:
                return d
        return None

    def is_suite(self, file_path: Path) -> bool:
        """A YAML file named on the command line, or one with a top-level ``cases:`` under a
        suites directory (outside its cassettes and baselines)."""
        from .suites.spec import looks_like_suite

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
        from .api.locks import remove_locks, remove_session_dir

        if self.owns_budget and self.ctx.budget is not None:
            self.ctx.budget.remove()
        if self.owns_limiter and self.ctx.limiter is not None:
            self.ctx.limiter.remove()
        if not self.is_worker and self.ctx.session_dir is not None:
            remove_session_dir(self.ctx.session_dir)
        remove_locks(folders=not self.is_worker)
        if not self.is_worker and self.ctx.state_dir is not None:
            with contextlib.suppress(OSError):
                self.ctx.state_dir.rmdir()  # only when nothing is left in it
        if self.fake_server is not None:
            self.fake_server.stop()

    def profile_check(self, path: Path) -> Callable[[CaseSpec], str | None]:
        """A ``check_case`` for suites under ``path``'s suites root (profiles read lazily)."""

        def check(spec: CaseSpec) -> str | None:
            if spec.use_case is None:
                return None
            from .suites.profiles import PROFILES_FILE, load_profiles

            root = self.ctx.suites_root(path)
            if root not in self._profiles:
                file = root / PROFILES_FILE
                self._profiles[root] = load_profiles(file, relative(self.config, file))
            return self._profiles[root].checker(self.ctx.prices)(spec)

        return check

    # -- pytest hooks (the state is registered as a plugin)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.python_api.collected(session.items, lambda item: case_spec(item) is not None)
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
                from .cassettes.remote import image_store
                from .checks.perceptual import complete_hashes

                for update in data.get("baseline_updates") or []:
                    store = image_store(self.ctx, Path(str(update["images_dir"])))
                    for image in update["images"]:
                        with contextlib.suppress(ImagegenError):  # reported when written
                            complete_hashes(image, store)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.config.getoption("imagegen_approve"):  # issue 21: apply, run no test
            from .suites import reviewing

            cases = [(i.nodeid, spec) for i in session.items if (spec := case_spec(i)) is not None]
            return reviewing.approve(self, session, cases)
        if not self.config.getoption("imagegen_estimate"):
            self._prefetch(session)
            return None
        from .review.estimate import render, right_size_lines
        from .suites.estimate import estimate

        cases = [(i.nodeid, spec) for i in session.items if (spec := case_spec(i)) is not None]
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        est = estimate(cases, self.ctx)
        self.estimated = [{"nodeid": r.nodeid, "list_cost": r.list_cost} for r in est.rows]
        if tr is not None:
            tr.write_sep("-", "imagegen estimate")
            for line in render(est, per_case=self.config.getoption("verbose") >= 0):
                tr.write_line(line)
            if self.config.getoption("imagegen_right_size"):
                tr.write_sep("-", "imagegen right-size estimate")
                for line in right_size_lines(est):
                    tr.write_line(line)
        return True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or any(
            self.config.getoption(o) for o in ("imagegen_ledger", "imagegen_prune")
        ):
            return
        self._merge_interrupted()
        from .review.gate import compare

        estimating = self.config.getoption("imagegen_estimate")
        limit = self.options.cost_limit
        if self.cost_baseline is not None:
            costs = self.estimated if estimating else self.results
            self.cost_diff = compare(self.cost_baseline, costs)
            if (
                limit is not None
                and self.cost_diff.exceeds(limit)
                and session.exitstatus == pytest.ExitCode.OK
            ):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if estimating:
            return
        try:
            self._finish_baselines()
            from .review.reports import write_reports

            step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
            write_reports(
                self.results,
                json_path=self.options.report_path,
                markdown_path=self.options.markdown_path,
                step_summary=Path(step_summary) if step_summary else None,
                cost_diff=self.cost_diff,
                cost_limit=limit,
                groups=self.right_size_groups(),
                redactor=self.ctx.redactor,
                root=self.config.rootpath,
            )
        except (OSError, ImagegenError) as exc:  # the summary is still printed
            self.finish_lines.append(f"reports NOT written: {exc}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _finish_baselines(self) -> None:
        from .checks import drift

        full = self.full_files
        if self.worker_full_files:  # xdist: a file is complete only if every worker saw it so
            full = dict(self.worker_full_files[0])
            for other in self.worker_full_files[1:]:
                full = {k: v for k, v in full.items() if other.get(k) == v}
        from .suites import reviewing  # issue 21: approvals are recorded, the page written

        reviewing.stamp_approvals(self)
        updates = [u for r in self.results for u in r.get("baseline_updates") or []]
        prune = full if self.settings.update_baselines else None
        if updates or prune:
            from .cassettes.remote import image_store

            try:
                self.finish_lines += drift.apply_updates(
                    updates,
                    prune,
                    self.ctx.redactor,
                    lock_root=self.ctx.state_dir,
                    stores=lambda d: image_store(self.ctx, d),
                )
            except ImagegenError as exc:
                self.finish_lines.append(f"baselines NOT written: {exc}")
        if self.settings.html_dir is not None:
            index = reviewing.write_page(self, self.settings.html_dir)
            self.finish_lines.append(f"visual review: {relative(self.config, index)}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .review.terminal import SummaryInput, sections

        budget = self.ctx.budget
        report = self.options.report_path
        found = sections(
            SummaryInput(
                results=self.results,
                estimating=bool(self.config.getoption("imagegen_estimate")),
                finish_lines=self.finish_lines,
                budget=budget.snapshot() if budget is not None and self.owns_budget else None,
                cost_diff=self.cost_diff,
                cost_limit=self.options.cost_limit,
                report=relative(self.config, report) if report is not None else None,
                fake_server=self.fake_server is not None,
                groups=self.right_size_groups(),
                mask=self.ctx.redactor.mask,
            )
        )
        for title, lines in found:
            terminalreporter.write_sep("-", title)
            for line, markup in lines:
                terminalreporter.write_line(line, **markup)

    def _prefetch(self, session: pytest.Session) -> None:
        """``--imagegen-concurrency=N``: record what the tests will send, N at a time."""
        s = self.settings
        if s.concurrency <= 1 or s.record_mode == "none" or self.is_controller_of_workers:
            return
        o = self.config.option
        if o.collectonly or getattr(o, "setuponly", False) or getattr(o, "setupplan", False):
            return  # nothing is ever sent outside the test loop (SPEC §12)
        from .suites import prefetch

        worker = None
        if self.is_worker:
            given = self.config.workerinput  # type: ignore[attr-defined]
            worker = (int(str(given["workerid"]).lstrip("gw") or 0), int(given["workercount"]))
        cases = [(i.nodeid, spec) for i in session.items if (spec := case_spec(i)) is not None]
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        prefetch.for_session(cases, self.ctx, worker, tr, self.config.getoption("verbose") < -1)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A rerun (pytest-rerunfailures) starts from a fresh result: its figures replace
        the earlier run's instead of adding to them."""
        from .pyapi.runtime import result_key

        if result_key in item.stash:
            del item.stash[result_key]

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        """Ctrl-C: every paid call still open is booked now (in flight: its list cost), and
        further Ctrl-Cs are ignored so the reports and the ledger are not cut short."""
        import signal
        import threading

        self.ctx.stopping = True
        self.ctx.abandon_open_calls()
        self._interrupted(self.ctx.interrupted_results())
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.exit_stack.callback(signal.signal, signal.SIGINT, previous)

    def _interrupted(self, results: list[dict[str, Any]]) -> None:
        """Tests a Ctrl-C cut short count in every figure (summary, JSON, JUnit) with what
        they booked; an xdist worker hands them to the controller through the session
        folder (its reports stop with the interrupt)."""
        fresh = [r for r in results if r["nodeid"] not in self._results]
        if not fresh:
            return
        if self.is_worker and self.ctx.session_dir is not None:
            import json

            from .api.locks import replace_private

            path = self.ctx.session_dir / f"interrupted-{os.getpid()}.json"
            replace_private(path, json.dumps(fresh))
            return
        for r in fresh:
            self._results[r["nodeid"]] = r

    def _merge_interrupted(self) -> None:
        """On the controller: what workers cut short by Ctrl-C booked (see _interrupted)."""
        import json

        folder = self.ctx.session_dir
        for path in sorted(folder.glob("interrupted-*.json")) if folder else []:
            try:
                found = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for r in found if isinstance(found, list) else []:
                if isinstance(r, dict) and isinstance(r.get("nodeid"), str):
                    self._results.setdefault(r["nodeid"], r)

    # -- tests' own code: the imagegen marker and fixture
    @contextlib.contextmanager
    def guard_test(self, item: pytest.Item) -> Iterator[None]:
        """Around a test's call: the Python API's guard, when the test needs one."""
        with self.python_api.guard_test(item, is_case=case_spec(item) is not None):
            yield

    def fixture_for(self, node: Any) -> Imagegen:
        """The ``imagegen`` fixture's object for the test ``node``."""
        return self.python_api.fixture_for(node)

    def made_report(self, item: pytest.Item, when: str, report: pytest.TestReport) -> None:
        """Mask the report; put the case's figures on the call report (they travel to the
        xdist controller with it)."""
        from .pyapi.runtime import result_key

        self.mask_report(report)
        result = getattr(item, "result", None) or item.stash.get(result_key, None)
        if when == "call" and result is not None and result.list_cost is not None:
            result.outcome = report.outcome
            report.imagegen = self.ctx.redactor.mask_data(result.to_dict())  # type: ignore[attr-defined]
            from .review.htmlextras import add_extras  # pytest-html, when it is writing

            add_extras(self.config, report, report.imagegen)

    def right_size_groups(self) -> list[Any] | None:
        """The right-sizing groups of the run (``--imagegen-right-size``), else ``None``."""
        if not self.config.getoption("imagegen_right_size"):
            return None
        from .review.rightsize import groups

        return groups(self.results)

    def fail(self, exc: BaseException | str) -> NoReturn:
        """Fail the running test with a plugin message: no traceback, no API key, and no
        "During handling of the above exception" chain when called while handling one."""
        try:
            pytest.fail(self.ctx.redactor.mask(str(exc)), pytrace=False)
        except pytest.fail.Exception as failure:
            failure.__context__ = None
            failure.__suppress_context__ = True
            raise failure from None

    def mask_report(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        """Last line of defence: no API key in what pytest prints or writes (-l, -vvv,
        JUnit XML, captured output), whatever object's repr carried it."""
        self.ctx.redactor.mask_report(report)


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
        node.workerinput["imagegen_state_dir"] = str(ctx.state_dir or "")
        if ctx.limiter is not None:
            node.workerinput["imagegen_limiter"] = ctx.limiter.describe()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        full = getattr(node, "workeroutput", {}).get("imagegen_full_files")
        if full is not None:
            self.state.worker_full_files.append(full)


state_key = pytest.StashKey[ImagegenState]()


def get_state(config: pytest.Config) -> ImagegenState:
    return config.stash[state_key]


def case_spec(item: pytest.Item) -> CaseSpec | None:
    """The case of a suite item (``items.CaseItem``), ``None`` for other tests."""
    from .suites.spec import CaseSpec

    spec = getattr(item, "spec", None)
    return spec if isinstance(spec, CaseSpec) else None
