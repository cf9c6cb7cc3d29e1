"""Starting a session: the state built from the options, the session's state folder,
budget and limiter (the xdist controller makes them; workers open them), and
``--imagegen-ledger``, which runs instead of the tests."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from .api.errors import ImagegenError
from .options import ini_dir, read_run_options, read_settings
from .session import ImagegenState, get_state, relative


def build_state(config: pytest.Config) -> ImagegenState:
    """The session state from the options (``ImagegenError`` when one is invalid)."""
    settings, prices = read_settings(config)
    options = read_run_options(config)
    invocation = config.invocation_params.dir
    explicit = frozenset((invocation / arg.split("::")[0]).resolve() for arg in config.args if arg)
    state = ImagegenState(config, settings, prices, explicit, options)
    _configure_session(config, state)
    _configure_costs(config, state)
    _one_interrupt(state)
    if config.getoption("imagegen_fake_server"):
        from .fakeserver import FakeImagesServer
        from .pyapi.transports import FakeRoute, rerouted

        state.fake_server = FakeImagesServer(deployments=dict(settings.providers.deployments))
        state.fake_server.start()
        state.settings = state.ctx.settings = dataclasses.replace(
            settings,
            base_url=state.fake_server.url,
            base_url_source="--imagegen-fake-server",
            fake_server=True,
            providers=settings.providers.local(),  # Azure and Gemini routes to it too
        )
        state.ctx.environ = {**os.environ, "IMAGEGEN_API_KEY": "fake-server-key"}
        state.exit_stack.enter_context(rerouted(FakeRoute(state.fake_server.url)))
        from .pyapi.otherclients import refused  # what cannot be rerouted is not sent

        why = (
            "with --imagegen-fake-server only httpx and openai SDK calls can go to the fake server"
        )
        state.exit_stack.enter_context(refused(why, state.fail, loopback_ok=True))
    return state


def _configure_session(config: pytest.Config, state: ImagegenState) -> None:
    """The session's id, scratch folder and shared rate limiter (the xdist controller makes
    them; its workers get them through ``workerinput``)."""
    from .api.limiter import SharedLimiter
    from .api.locks import STATE_DIR, new_session_dir, private_dir

    if state.is_worker:
        given = config.workerinput  # type: ignore[attr-defined]
        state.ctx.session_id = str(given.get("imagegen_session_id") or "")
        folder = given.get("imagegen_session_dir")
        state.ctx.session_dir = Path(folder) if folder else None
        root = given.get("imagegen_state_dir")
        state.ctx.state_dir = Path(root) if root else None
        if given.get("imagegen_limiter"):
            state.ctx.limiter = SharedLimiter.from_description(given["imagegen_limiter"])
        return
    import uuid

    state.ctx.state_dir = private_dir(config.rootpath / STATE_DIR)
    state.ctx.session_id = uuid.uuid4().hex
    state.ctx.session_dir = new_session_dir(state.ctx.state_dir, state.ctx.session_id)
    o = state.options
    if o.rate_limit is not None or o.max_inflight is not None:
        state.ctx.limiter = SharedLimiter.create(
            o.max_inflight, o.rate_limit, state.ctx.session_dir
        )
        state.owns_limiter = True


def _configure_costs(config: pytest.Config, state: ImagegenState) -> None:
    """The session budget, and on the controller: writable report paths, the cost baseline."""
    from .money.budget import SessionBudget

    o = state.options
    if state.is_worker:
        path = config.workerinput.get("imagegen_budget")  # type: ignore[attr-defined]
        if path:
            state.ctx.budget = SessionBudget(Path(path))
        return
    if o.budget is not None:
        assert state.ctx.session_dir is not None
        state.ctx.budget = SessionBudget.create(o.budget, state.ctx.session_dir)
        state.owns_budget = True
    from .cassettes.files import writable_problem

    for option, path, is_dir in (
        ("--imagegen-report", o.report_path, False),
        ("--imagegen-markdown", o.markdown_path, False),
        ("--imagegen-html", state.settings.html_dir, True),
    ):
        problem = path and writable_problem(path, directory=is_dir)
        if problem:
            raise ImagegenError(f"{option}: {problem}; choose a path you can write to")
    if o.cost_baseline is not None:
        from .review.gate import load_baseline

        state.cost_baseline = load_baseline(o.cost_baseline)


def show_ledger(config: pytest.Config, session: pytest.Session) -> int:
    from .money import ledger

    state = get_state(config)
    roots = [*state.suite_dirs, state.settings.project_root or ini_dir(config).resolve()]
    tr: Any = config.pluginmanager.get_plugin("terminalreporter")
    ledger.show(
        [ledger.ledger_path(root) for root in dict.fromkeys(roots)],
        tr,
        lambda p: relative(config, p),
    )
    return 0


def _one_interrupt(state: ImagegenState) -> None:
    """Ctrl-C interrupts once: the first one raises KeyboardInterrupt as usual and the
    next ones are ignored until the session ends, so booking what was in flight, the
    reports and the summary are never cut short (pytest exits within seconds anyway)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return  # someone else handles Ctrl-C (or ignores it): leave it to them

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    state.exit_stack.callback(signal.signal, signal.SIGINT, previous)
