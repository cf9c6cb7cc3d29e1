"""Does an image say what the brief says? Fuzzy matching of expected text against OCR output.

Both sides are normalised: case, whitespace and punctuation are ignored and the
characters OCR engines confuse most are folded together (``0``/``O``;
``1``/``I``/``l``/``|``). The similarity of an expected string is
``1 - edit distance / len(expected)`` against the *best-matching stretch* of
everything read from the image (approximate substring matching), so text
around it does not count against it: ``GRANDOPENING`` read for
``GRAND OPENING`` is 1.0; ``GRAD OPENING`` (one letter lost) is 0.92.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

#: OCR confusions folded after upper-casing (lower-case ``l`` is folded before)
CONFUSIONS = str.maketrans({"0": "O", "1": "I", "|": "I"})
DEFAULT_SIMILARITY = 0.95


def normalise(text: str) -> str:
    """Upper-case letters and digits only, confusable characters folded.

    ``l`` (lower-case L) folds to ``I`` as OCR reads it; an upper-case ``L`` is kept.
    """
    folded = "".join("I" if ch == "l" else ch for ch in unicodedata.normalize("NFKC", text))
    return "".join(ch for ch in folded.upper().translate(CONFUSIONS) if ch.isalnum())


def best_stretch(expected: str, read: str) -> tuple[int, str]:
    """(edit distance, stretch of ``read``) of the substring of ``read`` closest to ``expected``.

    Sellers' algorithm: a Levenshtein table whose first row is all zeros, so a match
    may start anywhere in ``read``; the best end is the minimum of the last row.
    """
    if not expected:
        return 0, ""
    previous = [0] * (len(read) + 1)
    starts = list(range(len(read) + 1))  # where the stretch ending here begins
    for i, e in enumerate(expected, 1):
        current = [i] + [0] * len(read)
        current_starts = [0] + [0] * len(read)
        for j, r in enumerate(read, 1):
            options = (
                (previous[j - 1] + (e != r), starts[j - 1]),  # match / substitute
                (previous[j] + 1, starts[j]),  # expected char missing from read
                (current[j - 1] + 1, current_starts[j - 1]),  # extra char in read
            )
            current[j], current_starts[j] = min(options)
        previous, starts = current, current_starts
    end = min(range(len(read) + 1), key=lambda j: (previous[j], j))
    return previous[end], read[starts[end] : end]


@dataclass(frozen=True)
class TextMatch:
    expected: str
    similarity: float
    found: str  # the best-matching stretch of what was read (normalised)

    def passes(self, threshold: float) -> bool:
        return self.similarity >= threshold - 1e-9


def match(expected: str, lines: Sequence[str]) -> TextMatch:
    """How well ``expected`` appears in the text ``lines`` read from one image."""
    want = normalise(expected)
    read = normalise("".join(lines))
    if not want:
        return TextMatch(expected, 1.0, "")
    distance, found = best_stretch(want, read)
    return TextMatch(expected, max(0.0, 1.0 - distance / len(want)), found)
