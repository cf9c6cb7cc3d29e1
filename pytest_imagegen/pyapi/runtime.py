"""The Python API in a session: which tests it guards, their cassettes, the fixture.

A test marked ``@pytest.mark.imagegen`` or using the ``imagegen`` fixture gets
a recording session (:func:`.marker.recording_session`) around its call; with
``--imagegen-block-network`` any other test's images request fails unsent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ..api.errors import ImagegenError
from ..money.context import RunContext
from ..review.junit import emit_warning, junit_properties
from ..review.results import CaseResult
from .fixture import Imagegen
from .marker import marker_options, recording_session, test_cassette_path, test_images_dir

result_key = pytest.StashKey[CaseResult]()


def uses_api(item: pytest.Item) -> bool:
    """Marked ``imagegen`` or using the ``imagegen`` fixture."""
    return item.get_closest_marker("imagegen") is not None or "imagegen" in getattr(
        item, "fixturenames", ()
    )


def marker_result(item: pytest.Item) -> CaseResult:
    """The result of a marked (or fixture-using) test, filled in as its requests run."""
    return CaseResult(
        nodeid=item.nodeid,
        suite=item.path.stem,
        category=None,
        model="",
        size="",
        quality=None,
        n=0,
    )


def item_result(item: Any) -> CaseResult:
    """The test's result (made once: shared by the fixture and the guard)."""
    result = item.stash.get(result_key, None) or marker_result(item)
    item.stash[result_key] = result
    return result


class PythonAPI:
    """Guards the tests' own image API calls for one session."""

    def __init__(
        self,
        ctx: RunContext,
        fail: Callable[[BaseException | str], NoReturn],
        *,
        block_network: bool,
        shown: Callable[[Path], str],
    ) -> None:
        self.ctx = ctx
        self.fail = fail
        self.block_network = block_network
        self.shown = shown
        self.shared_cassettes: dict[Path, list[str]] = {}

    def collected(self, items: list[pytest.Item], is_case: Callable[[pytest.Item], bool]) -> None:
        """Marked tests whose cassette names meet (``test[a!]``/``test[a?]``): each would
        replace the other's recording on every run."""
        owners: dict[Path, list[str]] = {}
        for item in items:
            if is_case(item) or not uses_api(item):
                continue
            marker = item.get_closest_marker("imagegen")
            cassette = marker.kwargs.get("cassette") if marker else None
            path = test_cassette_path(
                item.path, item.name, cassette if isinstance(cassette, str) else None
            )
            owners.setdefault(path, []).append(item.nodeid)
        self.shared_cassettes = {p: ids for p, ids in owners.items() if len(ids) > 1}

    @contextlib.contextmanager
    def guard_test(self, item: pytest.Item, is_case: bool) -> Iterator[None]:
        """Around a test's call: record/replay and guard its images requests when it is
        marked or uses the fixture; with ``--imagegen-block-network``, refuse them otherwise."""
        if is_case or not uses_api(item):
            if not is_case and self.block_network and item.get_closest_marker("vcr") is None:
                from .otherclients import refused
                from .transports import blocker  # pytest-recording's own tests are left alone

                why = "with --imagegen-block-network an unmarked test may not call an image API"
                with blocker(item.nodeid, self.fail), refused(why, self.fail):
                    yield
                return
            yield
            return
        marker = item.get_closest_marker("imagegen")
        try:
            max_cost, cassette = marker_options(
                dict(marker.kwargs) if marker else {}, self.ctx.settings.default_max_cost
            )
        except ImagegenError as exc:
            self.fail(exc)
        path = test_cassette_path(item.path, item.name, cassette)
        shared = [n for n in self.shared_cassettes.get(path, []) if n != item.nodeid]
        if shared:
            self.fail(
                f"{item.nodeid} and {', '.join(shared)} would use the same cassette file "
                f"{self.shown(path)} (their names differ only in characters a file "
                "name cannot hold); give each its own with @pytest.mark.imagegen(cassette=...)"
            )
        result = item_result(item)  # the fixture's, when it made one
        session = recording_session(
            ctx=self.ctx,
            result=result,
            cassette_path=path,
            images_dir=test_images_dir(item.path),
            max_cost=max_cost,
            ledger_root=self.ctx.suites_root(item.path),
            abort=self.fail,
        )
        from .otherclients import refused

        why = "in a test marked imagegen only httpx and openai SDK calls are recorded and priced"
        try:
            with refused(why, self.fail), session as guard:
                fixture = getattr(item, "funcargs", {}).get("imagegen")
                if fixture is not None:
                    fixture.guard = guard
                try:
                    yield
                finally:
                    if fixture is not None:
                        fixture.guard = None
        except ImagegenError as exc:  # opening or saving the cassette: a message, no traceback
            self.fail(exc)
        finally:  # after the guard booked every call of the test
            if result.list_cost is not None:
                item.user_properties.extend(junit_properties(result))
            emit_warning(result)

    def fixture_for(self, node: Any) -> Imagegen:
        """The ``imagegen`` fixture's object for the test ``node``."""
        return Imagegen(
            ctx=self.ctx,
            nodeid=node.nodeid,
            module=node.path,
            test_name=node.name,
            result=item_result(node),
            fail=self.fail,
        )
