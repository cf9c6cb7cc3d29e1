"""Words shared by the parameter checks of every provider (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: fields of a case, never extra parameters (checked by the suite loader)
CASE_FIELDS = ("model", "prompt", "n", "size", "quality", "image", "mask")
EXTRA_HINT = "a field only your gateway takes goes under `extra_params:` (sent unchecked)"


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
