"""The ``imagegen`` fixture: generate, edit, judge and read images inside a test.

:class:`Imagegen` sends requests through the project's own images client, so
they pass the test's guard (cassette, ceiling, budget, ledger), and compares
images with baselines like suite cases do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..api.errors import ImagegenError
from ..cassettes.paths import sanitize_id
from ..cassettes.remote import image_store
from ..money.context import RunContext
from ..review.results import CaseResult
from . import kinds
from .guard import REPLAY_KEY, Guard
from .marker import test_baseline_path, test_images_dir

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..api.client import Generation
    from ..checks.judge import Verdict


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
        provider: str | None = None,
        **params: Any,
    ) -> ImageResult:
        """Generate ``n`` images for ``prompt`` (``quality=None`` lets the API choose).

        ``provider`` (``openai``, ``azure``, ``gemini``) is the model's by default: the one
        its price entry names, ``azure`` for a deployment of ini ``imagegen_deployments``."""
        from ..api.providers import get, resolve

        s = self.ctx.settings
        shape = resolve(model, s.providers, self.ctx.prices.provider_of(model), provider)
        try:
            takes_quality = get(shape).takes_quality
        except ImagegenError as exc:
            self.fail(f"imagegen.generate: {exc}")
        body = _body(prompt, model, size, quality if takes_quality else None, n, params)
        generation, live = self._send(
            "generate", lambda client: client.generate(body, provider=shape)
        )
        list_cost = self.ctx.prices.list_cost(
            model, size, body.get("quality"), n, prompt, partial_images=kinds.partials(body)
        ).total
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
        from ..api import multipart as edits

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
        from ..api.providers import get, resolve

        shape = resolve(model, self.ctx.settings.providers, self.ctx.prices.provider_of(model))
        if not get(shape).takes_edits:
            self.fail(
                f"imagegen.edit: provider {shape} ({model}) cannot edit images yet; use a GPT "
                "image model (provider openai or azure)"
            )
        generation, live = self._send(
            "edit",
            lambda client: client.edit(edits.fields(body), files, mask_part, provider=shape),
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
        from ..api.errors import ImagegenError
        from ..api.settings import find_api_key

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
        from ..api.errors import ImagegenError

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
        from ..api.errors import ImagegenError
        from ..checks import judge

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

        from ..api.errors import ImagegenError
        from ..checks import ocr

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
        from ..checks import drift, perceptual

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
            store=image_store(self.ctx, test_images_dir(self.module)),
            thresholds=limits,
            mode=s.drift_mode,
            update=s.update_baselines,
            recorded=not result.replayed or s.record_mode != "none",
            cache=self.ctx.baselines,
            html_dir=s.html_dir,
        )
        self.result.apply_drift(outcome)
        if outcome.status in ("fail", "missing") and outcome.message:
            self.fail(outcome.message)
