"""pytest glue for the commands that look after the image files instead of running tests."""

from __future__ import annotations

from typing import Any

import pytest

from .session import get_state, relative


def show_prune(config: pytest.Config, session: pytest.Session) -> int:
    """``--imagegen-prune``: unreferenced image sidecars under the suite roots and test paths
    (and in the image store), listed or deleted (:mod:`.cassettes.prune`)."""
    from .cassettes import prune
    from .cassettes.remote import Remote

    state = get_state(config)
    url = state.settings.image_store
    tr: Any = config.pluginmanager.get_plugin("terminalreporter")
    tr.write_sep("-", "imagegen prune")
    paths = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    roots = [*state.suite_dirs, *(p if p.is_dir() else p.parent for p in paths)]
    if state.ctx.state_dir is not None:  # paid answers kept as pending cassettes
        roots.append(state.ctx.state_dir / "pending")
    mask = state.ctx.redactor.mask
    return prune.run(
        config.getoption("imagegen_prune"),
        roots,
        lambda line: tr.write_line(mask(line)),
        remote=Remote(url, state.ctx.redactor) if url else None,
        shown=lambda path: relative(config, path),
    )
