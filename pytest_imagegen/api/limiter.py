"""One rate limit for the whole session: requests in flight and images per minute (SPEC §16).

Providers limit images per minute; many workers each retrying 429s only
discover that limit by paying latency for it. The limiter is one small JSON
file under a file lock (like the session budget), shared by the prefetch's
threads and every pytest-xdist worker: a request waits for a free slot
(``imagegen_max_inflight``) and room in the last minute's images
(``imagegen_rate_limit = N/min``) before it is sent; a 429 pauses every
sender for its ``Retry-After``. Slots of processes that died are reclaimed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .locks import alive, create_private, replace_private

WINDOW = 60.0
POLL = 0.05
MAX_PAUSE = 60.0


def parse_rate(text: str | None) -> int | None:
    """``"50/min"`` (or a bare number: per minute) -> 50; ``None`` when unset."""
    if text is None or not str(text).strip():
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*min(?:ute)?)?\s*", str(text))
    if not m or int(m.group(1)) < 1:
        raise ConfigError(
            f"ini imagegen_rate_limit: {text!r} is not a rate; write images per minute, e.g. 50/min"
        )
    return int(m.group(1))


@dataclass(frozen=True)
class Slot:
    id: str


class SharedLimiter:
    """In-flight and images-per-minute limits shared across threads and processes."""

    def __init__(
        self,
        path: Path,
        max_inflight: int | None,
        per_minute: int | None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.max_inflight = max_inflight
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def create(
        cls, max_inflight: int | None, per_minute: int | None, directory: Path
    ) -> SharedLimiter:
        """A new limiter state file in the session's state folder (created 0600)."""
        path = directory / "limiter.json"
        create_private(path, json.dumps({"inflight": [], "sent": [], "paused_until": 0.0}))
        return cls(path, max_inflight, per_minute)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "max_inflight": self.max_inflight,
            "per_minute": self.per_minute,
        }

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> SharedLimiter:
        return cls(Path(data["path"]), data.get("max_inflight"), data.get("per_minute"))

    def _locked(self) -> Any:
        from filelock import FileLock

        return FileLock(str(self.path.with_name(self.path.name + ".lock")), mode=0o600)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data.setdefault("inflight", [])
        data.setdefault("sent", [])
        data.setdefault("paused_until", 0.0)
        return data

    def _write(self, data: dict[str, Any]) -> None:
        replace_private(self.path, json.dumps(data))

    def _wait_needed(self, data: dict[str, Any], images: int, now: float) -> float:
        data["sent"] = [s for s in data["sent"] if now - s[0] < WINDOW]
        data["inflight"] = [s for s in data["inflight"] if alive(int(s.get("pid", 0)))]
        wait = max(0.0, float(data["paused_until"]) - now)
        if self.max_inflight is not None and len(data["inflight"]) >= self.max_inflight:
            wait = max(wait, POLL)
        if self.per_minute is not None and images:
            used = sum(int(s[1]) for s in data["sent"])
            if used + images > self.per_minute and data["sent"]:
                # wait until enough of the window has passed
                need, freed = used + images - self.per_minute, 0
                for started, count in sorted(data["sent"]):
                    freed += int(count)
                    if freed >= need:
                        wait = max(wait, started + WINDOW - now)
                        break
        return wait

    def acquire(self, images: int = 1, cancelled: Callable[[], bool] | None = None) -> Slot:
        """Wait until a request of ``images`` images may be sent; hold its slot. Waiting
        ends with ``KeyboardInterrupt`` once ``cancelled()`` (Ctrl-C)."""
        while True:
            if cancelled is not None and cancelled():
                raise KeyboardInterrupt
            with self._locked():
                data = self._read()
                now = self._clock()
                wait = self._wait_needed(data, images, now)
                if wait <= 0:
                    slot = Slot(uuid.uuid4().hex)
                    data["inflight"].append({"id": slot.id, "pid": os.getpid(), "t": now})
                    if images:
                        data["sent"].append([now, images])
                    self._write(data)
                    return slot
            self._sleep(min(max(wait, POLL), 1.0))

    def release(self, slot: Slot) -> None:
        with self._locked():
            data = self._read()
            data["inflight"] = [s for s in data["inflight"] if s.get("id") != slot.id]
            self._write(data)

    def pause(self, seconds: float) -> None:
        """After a 429: no request of the session starts for ``seconds`` (at most 60 s, the
        longest Retry-After pytest-imagegen honours)."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE) if seconds == seconds else MAX_PAUSE
        with self._locked():
            data = self._read()
            data["paused_until"] = max(float(data["paused_until"]), self._clock() + seconds)
            self._write(data)

    def remove(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".lock")):
            with contextlib.suppress(OSError):
                path.unlink()
