"""The Python API: recording sessions for marked tests and the ``imagegen`` fixture.

``recording_session`` opens a test's cassette (vcrpy, image sidecars,
secret refusal) with the session's record mode and installs a
:class:`~pytest_imagegen.guard.Guard` on the httpx/httpx2 transports for the
duration of the test call. :class:`Imagegen` (the fixture object) sends
requests through the project's own images client, so they pass the same
guard, and compares images with baselines like suite cases do.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import command
from .files import shown
from .guard import REPLAY_KEY, FakeRoute, Guard, guarded
from .recording import ImageStore, Persister, new_meta, open_cassette, sanitize_id
from .runner import CaseResult, RunContext, apply_drift

if TYPE_CHECKING:
    from PIL.Image import Image

    from .client import Generation
    from .judge import Verdict


def marker_options(
    kwargs: dict[str, Any], default_max_cost: float | None
) -> tuple[float | None, str | None]:
    """``max_cost`` and ``cassette`` of ``@pytest.mark.imagegen(...)``, validated."""
    from .errors import ConfigError

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
    from .recording import read_fingerprint

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
    """The test's cassette and guard, open for the duration of the test call."""
    mode = ctx.settings.record_mode
    moved = migrate_cassette(cassette_path)
    if moved:
        result.notes.append(moved)
    existed = cassette_path.is_file()
    node = result.nodeid
    fix = f"re-record it with {command('--imagegen-record-mode=all', node)}"
    persister = Persister(ImageStore(images_dir), ctx.redactor, fix=fix, fresh=mode == "all")
    route = FakeRoute(ctx.settings.base_url) if ctx.settings.fake_server else None
    with open_cassette(cassette_path, persister, mode=mode, record_on_exception=True) as cassette:
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
                requests=requests,
                list_cost=sum(float(r.get("list_cost") or 0.0) for r in requests),
                actual_cost=sum(float(r.get("actual_cost") or 0.0) for r in requests),
            )
            if mode == "new_episodes":
                persister.keep = guard.used


def _body(
    prompt: str, model: str, size: str, quality: str | None, n: int, params: dict[str, Any]
) -> dict[str, Any]:
    """The request body of a fixture call (``quality=None``: left to the API)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "size": size}
    if quality is not None:
        body["quality"] = quality
    body.update(params)
    return body


@dataclass
class GeneratedImage:
    """One image of a result: its bytes, and a Pillow image decoded on first use."""

    data: bytes
    revised_prompt: str | None = None

    def __repr__(self) -> str:
        return f"GeneratedImage(<{len(self.data)} bytes>, revised_prompt={self.revised_prompt!r})"

    @cached_property
    def image(self) -> Image:
        from PIL import Image

        with Image.open(io.BytesIO(self.data)) as opened:
            opened.load()
            copy: Image.Image = opened.copy()
            return copy


@dataclass
class ImageResult:
    """What :meth:`Imagegen.generate` returns.

    ``list_cost`` is the preflight price of the request; ``actual_cost`` what
    the response's ``usage`` says it costs (the same on replay, where nothing is
    spent: ``replayed`` tells which).
    """

    images: list[GeneratedImage]
    request: dict[str, Any]
    usage: dict[str, Any] | None
    list_cost: float
    actual_cost: float
    replayed: bool
    key: str | None = None

    @property
    def revised_prompts(self) -> list[str | None]:
        return [i.revised_prompt for i in self.images]


@dataclass
class Imagegen:
    """The ``imagegen`` fixture: generate images and check them for drift.

    Calls go through the test's cassette (recorded once, replayed for $0), the
    cost ceiling of ``@pytest.mark.imagegen(max_cost=...)`` and the session
    budget, exactly like suite cases.
    """

    ctx: RunContext
    nodeid: str
    module: Path
    test_name: str
    result: CaseResult
    fail: Callable[[str], NoReturn]
    guard: Guard | None = None
    _keys: list[str] = field(default_factory=list)

    def generate(
        self,
        prompt: str,
        *,
        model: str = "gpt-image-2",
        size: str = "1024x1024",
        quality: str | None = None,
        n: int = 1,
        **params: Any,
    ) -> ImageResult:
        """Generate ``n`` images for ``prompt`` (``quality=None`` lets the API choose)."""
        body = _body(prompt, model, size, quality, n, params)
        generation, live = self._send("generate", lambda client: client.generate(body))
        list_cost = self.ctx.prices.list_cost(model, size, quality, n, prompt).total
        return self._image_result(body, generation, live, list_cost)

    def edit(
        self,
        prompt: str,
        *,
        image: str | Path | bytes | list[str | Path | bytes],
        mask: str | Path | bytes | None = None,
        model: str = "gpt-image-2",
        size: str = "1024x1024",
        quality: str | None = None,
        n: int = 1,
        **params: Any,
    ) -> ImageResult:
        """Edit ``image`` (paths relative to the test module, or bytes) with ``prompt``,
        optionally only where ``mask`` is transparent: recorded, priced (input images
        included) and replayed like :meth:`generate`."""
        from . import edits

        def part(value: str | Path | bytes, name: str) -> tuple[str, bytes, str]:
            if isinstance(value, bytes):
                return (name, value, "image/png")
            path = value if Path(value).is_absolute() else self.module.parent / value
            try:
                return (Path(path).name, Path(path).read_bytes(), "image/png")
            except OSError as exc:
                self.fail(f"imagegen.edit: cannot read {value!s}: {exc.strerror}")

        body = _body(prompt, model, size, quality, n, params)
        images = image if isinstance(image, list) else [image]
        files = [part(i, f"image-{k}.png") for k, i in enumerate(images)]
        mask_part = part(mask, "mask.png") if mask is not None else None
        generation, live = self._send(
            "edit", lambda client: client.edit(edits.fields(body), files, mask_part)
        )
        sent = [(f[0], f[1]) for f in [*files, *([mask_part] if mask_part else [])]]
        list_cost = round(
            self.ctx.prices.list_cost(model, size, quality, n, prompt).total
            + self.ctx.prices.input_images_cost(model, edits.image_sizes(sent)),
            6,
        )
        return self._image_result(body, generation, live, list_cost)

    def _client_for_test(self, call: str) -> Any:
        """The session's client for the environment's key (a placeholder for replays)."""
        from .errors import ImagegenError
        from .settings import find_api_key

        if self.guard is None:
            self.fail(
                f"imagegen.{call}() works only inside the test function (the cassette and "
                "cost guard are open only while the test runs), not in fixtures"
            )
        try:
            _, key = find_api_key(self.ctx.environ)
        except ImagegenError:
            key = REPLAY_KEY  # fine for replays; the guard refuses a live call with it
        return self.ctx.client(key)  # shared for the session, closed at its end

    def _send(self, call: str, send: Callable[[Any], Generation]) -> tuple[Generation, bool]:
        """One images call through the guard: the generation, and whether it went live."""
        from .errors import ImagegenError

        client = self._client_for_test(call)
        assert self.guard is not None
        self.guard.last_live = None
        try:
            generation = send(client)
        except ImagegenError as exc:
            self.fail(str(exc))
        self.result.revised_prompts.extend(generation.revised_prompts)
        return generation, bool(self.guard.last_live)

    def _image_result(
        self, body: dict[str, Any], generation: Generation, live: bool, list_cost: float
    ) -> ImageResult:
        model = str(body.get("model"))
        return ImageResult(
            images=[GeneratedImage(i.data, i.revised_prompt) for i in generation.images],
            request=body,
            usage=generation.usage,
            list_cost=list_cost,
            actual_cost=self.ctx.prices.actual_cost(model, generation.usage, list_cost),
            replayed=not live,
        )

    def judge(
        self,
        result: ImageResult,
        rubric: str,
        *,
        min_score: float | None = None,
        model: str | None = None,
    ) -> list[Verdict]:
        """Ask the vision judge whether each image of ``result`` meets ``rubric``.

        Recorded in the test's cassette and replayed for $0 like ``generate``; priced
        (``list_cost`` before sending, ``usage`` after) and booked in the budget and the
        ledger. Fails the test when an image scores below ``min_score`` (default: ini
        ``imagegen_judge_min_score``); returns the verdicts (``score``, ``reason``).
        """
        from . import judge
        from .errors import ImagegenError

        s = self.ctx.settings
        model = model or s.judge_model
        minimum = s.judge_min_score if min_score is None else float(min_score)
        client = self._client_for_test("judge")
        verdicts = []
        try:
            for image in result.images:
                body = judge.request_body(model, rubric, judge.data_url(image.data))
                payload, _ = client.chat(body)
                verdicts.append(judge.parse_answer(payload))
        except (ImagegenError, judge.UnreadableAnswer) as exc:
            self.fail(f"imagegen.judge: {exc}")
        self.result.judge = {
            "model": model,
            "rubric": rubric,
            "min_score": minimum,
            "images": [{"score": v.score, "reason": v.reason} for v in verdicts],
        }
        low = [
            f"image {i}: scored {v.score:.2f} < {minimum:.2f}: {v.reason or 'no reason given'}"
            for i, v in enumerate(verdicts, 1)
            if not v.passes(minimum)
        ]
        if low:
            self.result.quality_check = "fail"
            self.fail("imagegen.judge: " + "; ".join(low))
        return verdicts

    def read_text(self, result: ImageResult) -> list[list[str]]:
        """What OCR reads in each image of ``result`` (the ``[ocr]`` extra), cached per image
        next to the test's image sidecars so a replay reads nothing again."""
        import hashlib

        from . import ocr
        from .errors import ImagegenError

        try:
            texts = [
                ocr.read_text(
                    image.data,
                    hashlib.sha256(image.data).hexdigest(),
                    test_images_dir(self.module),
                    self.ctx.redactor,
                )
                for image in result.images
            ]
        except ImagegenError as exc:
            self.fail(str(exc))
        self.result.text = texts
        return texts

    def assert_no_drift(
        self,
        result: ImageResult,
        *,
        key: str | None = None,
        phash: int | None = None,
        colorhash: int | None = None,
        **thresholds: int,
    ) -> None:
        """Fail if ``result``'s images drifted from the accepted ones for ``key``.

        Baselines live in ``<module dir>/baselines/<module>.json`` (the same
        format and workflow as suites: accepted when first recorded, updated
        with ``--imagegen-update-baselines``). ``key`` defaults to the test's
        name (``name#2`` for a second result in the same test).
        """
        from . import drift, perceptual

        if key is None:
            key = sanitize_id(self.test_name)
            if key in self._keys:
                key = f"{key}#{self._keys.count(key) + 1}"
        self._keys.append(key)
        own = {"phash": phash, "colorhash": colorhash, **thresholds}
        unknown = sorted(set(own) - set(perceptual.ALGORITHMS))
        if unknown:
            self.fail(
                f"assert_no_drift: unknown algorithm {', '.join(unknown)}; "
                f"allowed: {', '.join(perceptual.ALGORITHMS)}"
            )
        s = self.ctx.settings
        limits = drift.thresholds_for(
            {a: t for a, t in own.items() if t is not None}, s.drift_thresholds
        )
        outcome = drift.check(
            nodeid=self.nodeid,
            key=key,
            images=[i.data for i in result.images],
            prompt=str(result.request.get("prompt") or ""),
            baseline_file=test_baseline_path(self.module),
            images_dir=test_images_dir(self.module),
            thresholds=limits,
            mode=s.drift_mode,
            update=s.update_baselines,
            recorded=not result.replayed or s.record_mode != "none",
            cache=self.ctx.baselines,
            html_dir=s.html_dir,
        )
        apply_drift(self.result, outcome)
        if outcome.status in ("fail", "missing") and outcome.message:
            self.fail(outcome.message)
