"""pytest collection nodes for prompt suite files and their cases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .api.errors import ImagegenError, SuiteError
from .checks.perceptual import baseline_path
from .options import project_root
from .review.junit import emit_warning, junit_properties
from .review.results import CaseResult
from .session import display_path, get_state
from .suites.loader import load_suite
from .suites.runner import new_result, run_case
from .suites.spec import CaseSpec

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr


class SuiteFile(pytest.File):
    """A YAML prompt suite; each (matrix-expanded) case becomes a :class:`CaseItem`."""

    def collect(self) -> Iterator[CaseItem]:
        state = get_state(self.config)
        suite = load_suite(
            self.path,
            state.ctx.prices,
            display=display_path(self.config, self.path),
            check_case=state.profile_check(self.path),
            providers=state.settings.providers,
            project_root=project_root(self.config),
        )

        baseline = str(baseline_path(self.path))
        for nodeid, (other, _) in state.suite_files.items():
            if other == baseline and nodeid != self.nodeid:
                raise SuiteError(
                    [
                        f"{display_path(self.config, self.path)}: shares its cassette folder "
                        f"cassettes/{self.path.stem}/ and baseline file baselines/"
                        f"{self.path.stem}.json with {nodeid}; rename one of the two files"
                    ]
                )
        state.suite_files[self.nodeid] = (baseline, [spec.id for spec in suite.cases])
        for spec in suite.cases:
            yield CaseItem.from_parent(self, name=spec.id, spec=spec)

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ImagegenError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class CaseItem(pytest.Item):
    """One prompt case: one images request and the checks on what came back."""

    def __init__(self, *, spec: CaseSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.result: CaseResult | None = None
        # tags (and the category) become keywords, so `-k hero` selects
        self.extra_keyword_matches.update(spec.tags)
        if spec.category:
            self.extra_keyword_matches.add(spec.category)

    def runtest(self) -> None:
        state = get_state(self.config)
        self.result = result = new_result(self.spec, self.nodeid)
        try:
            run_case(self.spec, state.ctx, result)
        finally:
            self.user_properties.extend(junit_properties(result))
        emit_warning(result)

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ImagegenError):
            where = f"{display_path(self.config, self.path)}:{self.spec.line}"
            return f"{excinfo.value}\n\ncase {self.spec.id!r} at {where}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, self.spec.line - 1, f"case {self.spec.id}"
