"""The ``@pytest.mark.imagegen`` marker: a test's cassette and guard.

``recording_session`` opens a test's cassette (vcrpy, image sidecars, secret
refusal) with the session's record mode and installs a
:class:`~pytest_imagegen.pyapi.guard.Guard` on the httpx/httpx2 transports for
the duration of the test call.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from ..api.errors import command
from ..cassettes.files import shown
from ..cassettes.format import new_meta
from ..cassettes.paths import sanitize_id
from ..cassettes.persister import Persister, open_cassette
from ..cassettes.remote import image_store
from ..cassettes.store import ImageStore, UploadFailed
from ..money.context import RunContext
from ..review.results import CaseResult
from .guard import Guard
from .transports import FakeRoute, guarded


def marker_options(
    kwargs: dict[str, Any], default_max_cost: float | None
) -> tuple[float | None, str | None]:
    """``max_cost`` and ``cassette`` of ``@pytest.mark.imagegen(...)``, validated."""
    from ..api.errors import ConfigError

    unknown = sorted(set(kwargs) - {"max_cost", "cassette"})
    if unknown:
        raise ConfigError(
            f"@pytest.mark.imagegen: unknown argument {', '.join(unknown)}; allowed: max_cost, cassette"
        )
    max_cost = kwargs.get("max_cost", default_max_cost)
    if max_cost is not None and (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or not math.isfinite(max_cost)
        or max_cost <= 0
    ):
        raise ConfigError(
            f"@pytest.mark.imagegen: max_cost must be a finite number of USD > 0, got {max_cost!r}"
        )
    cassette = kwargs.get("cassette")
    if cassette is not None and (not isinstance(cassette, str) or not cassette.strip()):
        raise ConfigError(
            f"@pytest.mark.imagegen: cassette must be a file name (str), got {cassette!r}"
        )
    return (float(max_cost) if max_cost is not None else None), cassette


#: marked tests' cassettes end so, beside pytest-recording's ``<test>.yaml`` (which its
#: ``--record-mode=rewrite`` deletes)
TEST_SUFFIX = ".imagegen.yaml"


def test_cassette_path(module: Path, test_name: str, cassette: str | None = None) -> Path:
    """``<module dir>/cassettes/<module stem>/<test name>.imagegen.yaml``, or the marker's
    ``cassette`` (relative to ``<module dir>/cassettes``)."""
    if cassette:
        path = Path(cassette)
        if path.suffix not in (".yaml", ".yml"):
            path = path.with_name(sanitize_id(path.name) + ".yaml")
        return path if path.is_absolute() else module.parent / "cassettes" / path
    return module.parent / "cassettes" / module.stem / f"{sanitize_id(test_name)}{TEST_SUFFIX}"


def migrate_cassette(path: Path) -> str | None:
    """Move an imagegen cassette from the name used before ``.imagegen.yaml`` (which
    pytest-recording shares) to ``path``; a note for the summary when one was moved."""
    from ..cassettes.format import read_fingerprint

    if not path.name.endswith(TEST_SUFFIX) or path.exists():
        return None
    old = path.with_name(path.name[: -len(TEST_SUFFIX)] + ".yaml")
    if not read_fingerprint(old):  # missing, or not one of ours (pytest-recording's)
        return None
    os.replace(old, path)
    return (
        f"moved imagegen cassette {shown(old)} to {shown(path)} (pytest-recording uses that name)"
    )


def test_images_dir(module: Path) -> Path:
    return module.parent / "cassettes" / "images"


def test_baseline_path(module: Path) -> Path:
    return module.parent / "baselines" / f"{module.stem}.json"


@contextlib.contextmanager
def recording_session(
    *,
    ctx: RunContext,
    result: CaseResult,
    cassette_path: Path,
    images_dir: Path,
    max_cost: float | None,
    ledger_root: Path,
    abort: Callable[[BaseException], NoReturn],
) -> Iterator[Guard]:
    """The test's cassette and guard, open for the duration of the test call.

    While recording, the test holds its cassette's lock: another pytest process recording
    the same test waits, then replays what this one paid for (SPEC §12)."""
    mode = ctx.settings.record_mode
    if mode == "none":
        lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    else:
        from ..api.locks import file_lock

        lock_root = ctx.state_dir or cassette_path.parent
        lock = file_lock(cassette_path, lock_root, timeout=ctx.settings.timeout * 10)
    before = _stamp(cassette_path)
    with lock:
        if mode == "all" and _stamp(cassette_path) != before:
            mode = "new_episodes"  # another process recorded it while this one waited
        with _session(
            ctx, result, cassette_path, images_dir, max_cost, ledger_root, abort, mode
        ) as g:
            yield g


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@contextlib.contextmanager
def _session(
    ctx: RunContext,
    result: CaseResult,
    cassette_path: Path,
    images_dir: Path,
    max_cost: float | None,
    ledger_root: Path,
    abort: Callable[[BaseException], NoReturn],
    mode: str,
) -> Iterator[Guard]:
    moved = migrate_cassette(cassette_path)
    if moved:
        result.notes.append(moved)
    node = result.nodeid
    fix = f"re-record it with {command('--imagegen-record-mode=all', node)}"
    pending_dir = ctx.state_dir / "pending" if ctx.state_dir else None
    store = image_store(ctx, images_dir)
    if not cassette_path.exists() and promote_pending(pending_dir, cassette_path, store, ctx, fix):
        result.notes.append(f"{node}: wrote its cassette from the paid answers kept last run")
    existed = cassette_path.is_file()
    if mode == "all" and existed and recorded_by(cassette_path, ctx.session_id, fix):
        mode = "new_episodes"  # a rerun in this session replays what this session paid for
    persister = Persister(
        store, ctx.redactor, fix=fix, fresh=mode == "all", pending_dir=pending_dir
    )
    route = FakeRoute(ctx.settings.base_url) if ctx.settings.fake_server else None
    try:
        with open_cassette(
            cassette_path, persister, mode=mode, record_on_exception=True
        ) as cassette:
            guard = Guard(
                ctx=ctx,
                result=result,
                cassette=cassette,
                cassette_path=cassette_path,
                mode=mode,
                existed=existed,
                max_cost=max_cost,
                ledger_root=ledger_root,
                abort=abort,
                route=route,
                recorded_meta=persister.loaded_meta,
            )
            try:
                with guarded(guard):
                    yield guard
            finally:
                guard.finish()
                requests = guard.requests_meta
                persister.meta = new_meta(
                    nodeid=node,
                    session=ctx.session_id,
                    requests=requests,
                    list_cost=sum(float(r.get("list_cost") or 0.0) for r in requests),
                    actual_cost=sum(float(r.get("actual_cost") or 0.0) for r in requests),
                )
                if mode == "new_episodes":
                    persister.keep = guard.used
    except BaseException:
        with contextlib.suppress(UploadFailed):  # the test's own failure is the one to show
            store.flush()
        raise
    store.flush()  # the new images to the image store, if any, now that vcrpy let go of HTTP


def recorded_by(path: Path, session_id: str, fix: str) -> bool:
    """The cassette was written by this session (a rerun of the test)."""
    from ..api.errors import ImagegenError
    from ..cassettes.format import load_yaml

    try:
        meta = load_yaml(path, fix).get("imagegen")
    except ImagegenError:
        return False
    return bool(session_id) and isinstance(meta, dict) and meta.get("session") == session_id


def promote_pending(
    pending_dir: Path | None, path: Path, store: ImageStore, ctx: RunContext, fix: str
) -> bool:
    """Write a test's cassette from the paid answers an earlier run kept (its cassette could
    not be written then), so nothing is paid twice."""
    from ..cassettes.format import load_yaml
    from ..cassettes.pending import pending_path

    if pending_dir is None:
        return False
    kept = pending_path(pending_dir, path)
    if not kept.is_file():
        return False
    data = load_yaml(kept, fix)
    persister = Persister(store, ctx.redactor, fix=fix, fresh=True)
    meta = data.get("imagegen")
    persister.meta = {
        k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if k != "format"
    }
    persister.write(path, list(data["interactions"]))
    kept.unlink(missing_ok=True)
    return True
