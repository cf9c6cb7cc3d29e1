"""pytest glue for pytest-imagegen: the table of contents of the plugin.

Options live in :mod:`.options`, the per-session state and its reports in
:mod:`.session`, collection nodes in :mod:`.items`; each hook here hands over
to one of them in a line or two.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .api.errors import ImagegenError
from .housekeeping import show_prune
from .session import SKIP_DIRS, ImagegenState, XdistHooks, get_state, state_key
from .startup import build_state, show_ledger

if TYPE_CHECKING:
    from .pyapi.fixture import Imagegen

__all__ = ["ImagegenState", "get_state"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--imagegen-*`` options and ``imagegen_*`` ini keys."""
    from .options import add_options

    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Build the session state (a usage error when an option is invalid) and register it."""
    config.addinivalue_line(
        "markers",
        "imagegen(max_cost=None, cassette=None): record and replay the test's image API calls "
        "(httpx, httpx2, openai SDK) in a cassette, with a per-request cost ceiling in USD",
    )
    try:
        state = build_state(config)
    except ImagegenError as exc:
        raise pytest.UsageError(f"pytest-imagegen: {exc}") from None
    config.stash[state_key] = state
    config.pluginmanager.register(state, "imagegen-state")
    if (
        config.getoption("imagegen_estimate")
        or config.getoption("imagegen_ledger")
        or config.getoption("imagegen_approve")  # applied once, in this process
        or config.getoption("imagegen_prune")  # image store (issue 22): runs no tests
    ):
        # nothing runs: keep pytest-xdist from starting workers
        config.option.dist = "no"
        config.option.tx = []
        return
    if config.pluginmanager.hasplugin("xdist") or config.pluginmanager.hasplugin("xdist.plugin"):
        config.pluginmanager.register(XdistHooks(state), "imagegen-xdist")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--imagegen-ledger`` prints the spend ledger, ``--imagegen-prune`` the unreferenced
    images, instead of running tests."""
    for option, show in (("imagegen_ledger", show_ledger), ("imagegen_prune", show_prune)):
        if config.getoption(option):
            from _pytest.main import wrap_session

            return wrap_session(config, show)
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close clients, remove the session budget file, stop the fake server."""
    state = config.stash.get(state_key, None)
    if state is not None:
        if config.getoption("imagegen_review"):  # serve the review page until Ctrl-C
            from .suites.reviewing import serve

            serve(state)
        state.close()
        config.pluginmanager.unregister(state)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``cassettes``, ``baselines`` and ``.imagegen`` inside a suites directory."""
    if collection_path.name in SKIP_DIRS:
        state = config.stash.get(state_key, None)
        if state is not None and state.suite_root(collection_path.resolve()) is not None:
            return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A YAML prompt suite (under ``imagegen_suites`` or named on the command line)."""
    if file_path.suffix not in (".yaml", ".yml") or not get_state(parent.config).is_suite(
        file_path
    ):
        return None
    from .items import SuiteFile

    return SuiteFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Mask API keys in the report; attach the case's costs to the call report."""
    outcome = yield
    get_state(item.config).made_report(item, call.when, outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Mask API keys in collection errors."""
    outcome = yield
    state = collector.config.stash.get(state_key, None)
    if state is not None:
        state.mask_report(outcome.get_result())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Marked tests and the fixture: cassette, cost guard and budget around the call."""
    with get_state(item.config).guard_test(item):
        return (yield)


@pytest.fixture
def imagegen(request: pytest.FixtureRequest) -> Imagegen:
    """Generate images inside the test with cassettes, cost ceiling, budget and drift checks.

    ``imagegen.generate(prompt, model=..., size=..., quality=..., n=..., **params)`` returns an
    :class:`~pytest_imagegen.ImageResult`; ``imagegen.assert_no_drift(result, key=...,
    phash=..., colorhash=...)`` compares it with the accepted baseline.
    """
    return get_state(request.config).fixture_for(request.node)
