"""The run context: what every paid call of one process shares (settings, prices, budget,
limiter, clients, the key redactor)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.redact import APIKey, Redactor, key_digest
from ..api.settings import SECRET_ENV_VARS, Settings, find_api_key
from .prices import PriceTable

if TYPE_CHECKING:
    from ..api.client import ImagesClient
    from ..api.limiter import SharedLimiter
    from .budget import SessionBudget


@dataclass(repr=False)
class RunContext:
    """Per-session state shared by all cases of one process.

    Its ``repr`` names no key and no environment variable: a context (or an
    object holding one, like the ``imagegen`` fixture) may appear in a
    traceback printed with ``-l``. Clients are cached by a hash of their key.
    """

    settings: Settings
    prices: PriceTable
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    budget: SessionBudget | None = None
    limiter: SharedLimiter | None = None  # imagegen_max_inflight / imagegen_rate_limit
    session_id: str = ""  # one per test session (shared by its xdist workers)
    session_dir: Path | None = None  # the session's shared scratch folder
    baselines: dict[Path, Any] = field(default_factory=dict)  # loaded baseline files
    state_dir: Path | None = None  # <rootdir>/.imagegen: locks and session state
    open_calls: set[Any] = field(default_factory=set)  # paid calls not booked yet (Ctrl-C)
    interrupted: list[Any] = field(default_factory=list)  # calls a Ctrl-C cut short
    stopping: bool = False  # after Ctrl-C: no attempt may start
    finished_calls: list[Any] = field(default_factory=list)  # booked, by the tests' nodeids
    stores: dict[str, Any] = field(default_factory=dict)  # image stores (cassettes.remote)
    _clients: dict[str, ImagesClient] = field(default_factory=dict)
    _redactor: Redactor = field(default_factory=Redactor)

    def __repr__(self) -> str:
        s = self.settings
        return f"RunContext(base_url={s.base_url!r}, record_mode={s.record_mode!r})"

    def client(self, key: str | APIKey | None = None, *, private: bool = False) -> ImagesClient:
        """The images client for ``key``, by default the environment's (raises if none);
        ``private``: a new one for the caller alone (close it after use)."""
        from ..api.client import ImagesClient

        if key is None:
            _, found = find_api_key(self.environ)
            key = APIKey(found)
        if not isinstance(key, APIKey):
            key = APIKey(key)
        if private or key.digest not in self._clients:
            s = self.settings
            made = ImagesClient(
                s.base_url,
                key,
                timeout=s.timeout,
                max_retries=s.max_retries,
                backoff=s.backoff,
                redactor=self.redactor,
                limiter=self.limiter,
                max_response_mb=s.max_response_mb,
                providers=s.providers,
            )
            if private:
                return made
            self._clients[key.digest] = made
        return self._clients[key.digest]

    def replay_client(self) -> ImagesClient:
        """A client for replays: no key, no retries (nothing reaches the network)."""
        from ..api.client import ImagesClient

        name = key_digest("")
        if name not in self._clients:
            self._clients[name] = ImagesClient(
                self.settings.base_url,
                "imagegen-replay",
                max_retries=0,
                redactor=self.redactor,
                providers=self.settings.providers,
            )
        return self._clients[name]

    @property
    def redactor(self) -> Redactor:
        """Masks every API key of the environment (and any a test's client sent), and the
        image store's credentials."""
        self._redactor.add(*(self.environ.get(name) for name in SECRET_ENV_VARS))
        return self._redactor

    def track(self, call: Any) -> None:
        self.open_calls.add(call)

    def untrack(self, call: Any) -> None:
        self.open_calls.discard(call)
        self.finished_calls.append(call)

    def abandon_open_calls(self) -> None:
        """Ctrl-C: book every call still open (in flight: its list cost) and stop them."""
        for call in list(self.open_calls):
            call.abandon()
            self.interrupted.append(call)
        self.open_calls.clear()

    def interrupted_results(self) -> list[dict[str, Any]]:
        """Per test cut short by Ctrl-C: what its calls booked (its report never came; the
        caller keeps the tests that did report)."""
        by_node: dict[str, dict[str, Any]] = {}
        for call in dict.fromkeys([*self.finished_calls, *self.interrupted]):
            if not call.sent:
                continue  # never left the machine: nothing to say
            body = call.ledger_body
            entry = by_node.setdefault(
                call.nodeid,
                {
                    "nodeid": call.nodeid,
                    "suite": call.suite,
                    "category": call.category,
                    "model": str(body.get("model") or ""),
                    "size": str(body.get("size") or ""),
                    "quality": body.get("quality"),
                    "n": int(body.get("n") or 1) if str(body.get("n") or "1").isdigit() else 1,
                    "list_cost": 0.0,
                    "actual_cost": 0.0,
                    "cassette": "live",
                    "outcome": "interrupted",
                    "attempts": 0,
                    "server": "fake" if self.settings.fake_server else "live",
                    "notes": [],
                },
            )
            entry["list_cost"] = round(entry["list_cost"] + call.list_cost, 6)
            entry["actual_cost"] = round(entry["actual_cost"] + call.booked, 6)
            entry["attempts"] += call.attempts
            cut = call in self.interrupted
            note = (
                f"{call.nodeid}: interrupted (Ctrl-C) while its request was in flight; "
                "booked at list cost"
                if cut
                else f"{call.nodeid}: recorded before the Ctrl-C; its test did not run"
            )
            if note not in entry["notes"]:
                entry["notes"].append(note)
        return list(by_node.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def suites_root(self, path: Path) -> Path:
        """The suites directory a file belongs to (ledger and profiles live there)."""
        return suites_root(path, self.settings.suite_dirs, self.settings.project_root)


def suites_root(path: Path, suite_dirs: tuple[Path, ...], project: Path | None = None) -> Path:
    """The suite directory holding ``path``; else the first one that exists (tests' own
    code shares its ledger); else the project directory, so no empty suite directory is
    created just to hold a ledger."""
    resolved = path.resolve()
    for d in suite_dirs:
        if d in resolved.parents:
            return d
    for d in suite_dirs:
        if d.is_dir():
            return d
    return project or (suite_dirs[0].parent if suite_dirs else resolved.parent)
