"""Recording at API scale: the requests of a session, many in flight at once (SPEC §16).

With ``--imagegen-concurrency=N`` (N > 1), after collection and before the test
loop, every selected suite case whose record mode will send a request (missing
in ``once``, missing or stale in ``new_episodes``, every case in ``all``) is
recorded up to N at a time, each exactly as a test would record it: preflight
ceiling, budget reservation, retries, ledger line and cassette write. The
tests then replay those cassettes and report them as recorded, with what they
cost. A case whose prefetch failed fails its test with that error; nothing is
sent twice.

Under pytest-xdist the work is split: worker k of m prefetches every m-th case
from the k-th. A test that runs on another worker than the one that recorded
it waits on the cassette's lock and replays it (see ``runner.obtain``);
prefetch failures are shared through the session directory.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import ImagegenError
from ..money.prices import format_usd

if TYPE_CHECKING:
    from ..money.context import RunContext
    from .spec import CaseSpec

PLAIN_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal


def will_send(spec: CaseSpec, ctx: RunContext) -> bool:
    """Whether the record mode sends this case's request (and its ceiling allows it)."""
    from ..cassettes.format import fingerprint, read_fingerprint
    from ..cassettes.paths import suite_cassette_path
    from . import costing

    mode = ctx.settings.record_mode
    if mode == "none":
        return False
    ceiling = costing.ceiling(ctx, spec)
    if ceiling is not None and costing.list_cost(ctx, spec) > ceiling:
        return False  # fails before sending; its test says so
    if mode == "all":
        return True
    path = suite_cassette_path(spec.path, spec.id)
    state = read_fingerprint(path)
    if state is None:
        return True
    return mode == "new_episodes" and state != fingerprint(spec.request_body())


@dataclass
class Progress:
    """done/total, in flight, spent, ETA: a live line on a terminal, else a plain line at
    most every few seconds; nothing at ``-qq``."""

    total: int
    write: Callable[[str, bool], None]  # (line, live)
    live: bool
    done: int = 0
    inflight: int = 0
    spent: float = 0.0
    started: float = 0.0
    _last: float = 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = "?"
        if self.done:
            eta = f"{elapsed / self.done * (self.total - self.done):.0f}s"
        return (
            f"imagegen prefetch: {self.done}/{self.total} done, {self.inflight} in flight, "
            f"spent {format_usd(self.spent)}, ETA {eta}"
        )

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if self.live or final or now - self._last >= PLAIN_EVERY:
            self._last = now
            self.write(self.line(), self.live and not final)


GRACE = 2.0  # seconds in-flight requests get to finish after Ctrl-C before they are abandoned


def run(
    cases: Sequence[tuple[str, CaseSpec]],
    ctx: RunContext,
    concurrency: int,
    session_dir: Path | None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Record ``cases`` up to ``concurrency`` at once; nodeid -> the recorded result.

    Ctrl-C stops sending at once: the queue is dropped, requests in flight get
    :data:`GRACE` seconds to be answered (and are booked by outcome), the rest are
    booked as unknown outcomes at list cost, and the interrupt goes on to pytest.
    """
    from .runner import new_result, open_cassette, preflight, record_once

    lock = threading.Lock()
    done: dict[str, Any] = {}
    queue = list(reversed(cases))
    stop = threading.Event()

    def one(nodeid: str, spec: CaseSpec) -> None:
        result = new_result(spec, nodeid)
        if progress is not None:
            with lock:
                progress.inflight += 1
                progress.show()
        try:
            preflight(spec, ctx, result)
            record_once(spec, ctx, result, open_cassette(spec, nodeid))
            done[nodeid] = result
        except ImagegenError as exc:
            _remember(session_dir, nodeid, str(exc), result)
        except KeyboardInterrupt:
            return  # the session is stopping (its calls are booked by the main thread)
        except Exception as exc:  # a test must still say what happened
            _remember(session_dir, nodeid, f"prefetch failed: {type(exc).__name__}: {exc}", result)
        finally:
            if progress is not None and not stop.is_set():
                with lock:
                    progress.inflight -= 1
                    progress.done += 1
                    progress.spent += result.actual_cost
                    progress.show()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if not queue:
                    return
                nodeid, spec = queue.pop()
            one(nodeid, spec)

    if progress is not None:
        progress.started = time.monotonic()
        progress.show()
    threads = [
        threading.Thread(target=worker, name=f"imagegen-{i}", daemon=True)
        for i in range(max(1, min(concurrency, len(cases))))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)  # short waits: Ctrl-C reaches this thread at once
    except KeyboardInterrupt:
        stop.set()
        with lock:
            queue.clear()  # nothing more is sent
        interrupted(ctx, threads)
        raise
    if progress is not None:
        progress.show(final=True)
    return done


def interrupted(ctx: RunContext, threads: Sequence[threading.Thread]) -> None:
    """After Ctrl-C: in-flight requests get a moment to be answered, then every call still
    open is booked (in flight: its list cost). Further Ctrl-Cs are ignored meanwhile, so
    the booking is never cut short."""
    ctx.stopping = True  # no new attempt, no retry
    with ignoring_interrupts():
        ends = time.monotonic() + GRACE
        for thread in threads:
            thread.join(max(0.0, ends - time.monotonic()))
        ctx.abandon_open_calls()


@contextlib.contextmanager
def ignoring_interrupts() -> Iterator[None]:
    """SIGINT ignored for the duration (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _remember(session_dir: Path | None, nodeid: str, message: str, result: Any) -> None:
    """A failed prefetch for its test: the error and what the attempt booked (the test
    reports the same figure the ledger and the budget have)."""
    if session_dir is None:
        return
    from ..cassettes.files import atomic_write
    from .runner import prefetch_error_path

    record = {"message": message, "actual_cost": result.actual_cost, "attempts": result.attempts}
    atomic_write(prefetch_error_path(session_dir, nodeid), json.dumps(record).encode("utf-8"))


def for_session(
    cases: Sequence[tuple[str, CaseSpec]],
    ctx: RunContext,
    worker: tuple[int, int] | None,
    tr: Any,
    quiet: bool,
) -> None:
    """The session's prefetch: this process's share of the selected cases (the same list on
    every worker, split first), those whose request the record mode will send."""
    mine = [c for c in share(cases, worker) if will_send(c[1], ctx)]
    if not mine:
        return
    write, live = terminal_writer(tr, quiet)
    run(mine, ctx, ctx.settings.concurrency, ctx.session_dir, Progress(len(mine), write, live))


def share(items: Sequence[Any], worker: tuple[int, int] | None) -> list[Any]:
    """The cases this process prefetches: all, or every m-th from the k-th under xdist."""
    if worker is None:
        return list(items)
    index, count = worker
    return [item for i, item in enumerate(items) if i % count == index]


def terminal_writer(tr: Any, quiet: bool) -> tuple[Callable[[str, bool], None], bool]:
    """(write, live) for the progress line through pytest's terminal reporter."""
    live = bool(getattr(sys.stdout, "isatty", lambda: False)()) and tr is not None

    def write(line: str, rewrite: bool) -> None:
        if quiet or tr is None:
            return
        if rewrite:
            tr.rewrite(line)
        else:
            if live:
                tr.rewrite(line)
            tr.write_line(line)

    return write, live
