"""What one test's run produced, for every report (JSON-serialisable; travels to the
xdist controller on the test report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class DriftOutcome(Protocol):
    """What a drift check returns (:class:`~pytest_imagegen.checks.drift.DriftCheck`)."""

    status: str
    data: dict[str, Any]
    update: dict[str, Any] | None
    note: str | None
    message: str | None


@dataclass
class CaseResult:
    """Everything the reports need about one case run (JSON-serialisable)."""

    nodeid: str
    suite: str
    category: str | None
    model: str
    size: str
    quality: str | None
    n: int
    list_cost: float | None = None
    actual_cost: float = 0.0  # money spent by this run (0 for a replay)
    max_cost: float | None = None
    cassette: str = "none"  # live | replayed | recorded | missing | stale | none
    ceiling: str | None = None  # "list" or "actual" when the ceiling failed the test
    saved: float = 0.0  # for a replay: what the recording cost, i.e. what replay saved
    attempts: int = 0
    outcome: str = "unknown"
    drift: dict[str, Any] | None = None  # status, thresholds, per-image distances
    prompt: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # the body without the prompt
    baseline_updates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warning: str | None = None
    revised_prompts: list[str | None] = field(default_factory=list)  # per image, from the API
    text: list[list[str]] | None = None  # per image: what OCR read (cases with expect.text)
    accepted: int | None = None  # images that passed every quality check
    quality_check: str | None = None  # "fail" when expect.text (or the judge) failed the test
    judge: dict[str, Any] | None = None  # model, rubric, min_score, per image score and reason
    judge_cost: float = 0.0  # what judging cost in this run (0 on replay)
    images: int | None = None  # images that came back
    group: str | None = None  # right-sizing group (a matrix over size/quality/n/model)
    variant: str | None = None  # this case's cell of that matrix, e.g. "quality=low-size=…"
    min_accept_rate: float = 1.0
    excluded: str | None = None  # the use-case limit that rules this variant out
    # -- for the review page (SPEC §17): why the test failed, and what a case that failed
    # before its images were known still has to show
    failure: str | None = None  # the failure message (every failed check, masked)
    failed_checks: list[str] = field(default_factory=list)  # kinds, see review/states.py
    stale_changes: list[str] | None = None  # stale cassette: "field: old → new"
    rerecord_command: str | None = None  # how to (re-)record it, for stale / no cassette
    rerecord_cost: float | None = None  # what that costs (list)
    recorded_prompt: str | None = None  # the prompt the cassette was recorded for
    recorded_images: list[dict[str, Any]] = field(default_factory=list)  # cassette images,
    # when the test failed before it had current images (sha256, path)
    baseline_info: dict[str, Any] | None = None  # accepted images, prompt, approval record
    case_id: str = ""  # the case's id in its suite (its key in the baseline file)
    suite_file: str = ""  # the suite file (approvals find the case's baseline from it)
    server: str = "live"  # "fake" with --imagegen-fake-server: its figures are not spend

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply_drift(self, outcome: DriftOutcome) -> None:
        """Record a drift check: report data, baseline update, note, warning."""
        self.drift = outcome.data
        if outcome.update:
            self.baseline_updates.append(outcome.update)
        if outcome.note:
            self.notes.append(outcome.note)
        if outcome.status == "warn":
            self.warning = outcome.message
