"""SPEC §7: perceptual-hash baselines, drift thresholds, accept workflow, HTML review."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_imagegen.cassettes.store import ImageStore
from pytest_imagegen.checks import perceptual
from pytest_imagegen.checks.drift import check
from pytest_imagegen.checks.perceptual import BaselineFile, HashSource, accept_images, compare
from pytest_imagegen.fakeserver import encode_picture, render_picture

from .conftest import needs_xdist, write_suite

ONCE = "--imagegen-record-mode=once"
ALL = "--imagegen-record-mode=all"
UPDATE = "--imagegen-update-baselines"
BASELINE = Path("prompt_suites/baselines/s.json")
SUITE = """
    defaults: {{size: 256x256, quality: low, params: {{output_format: {fmt}}}}}
    cases:
      - id: kite
        prompt: "A red kite over the dunes"
        n: {n}
"""


def kite(project: pytest.Pytester, fmt: str = "png", n: int = 1, extra: str = "") -> None:
    write_suite(project, "s", SUITE.format(fmt=fmt, n=n) + extra)


def baseline_json(project: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((project.path / BASELINE).read_text())


@pytest.fixture
def recorded(project: pytest.Pytester, live_env) -> pytest.Pytester:  # type: ignore[no-untyped-def]
    kite(project)
    project.runpytest(ONCE).assert_outcomes(passed=1)
    live_env.reset()
    return project


# ---------------------------------------------------------------- baseline file


def test_recording_writes_the_baseline(recorded: pytest.Pytester) -> None:
    text = (recorded.path / BASELINE).read_text()
    data = json.loads(text)
    assert list(data) == ["format", "algorithms", "versions", "cases"]
    assert data["format"] == 1
    assert data["algorithms"]["phash"] == {"hash_size": 8}
    assert data["algorithms"]["colorhash"] == {"binbits": 3}
    assert data["versions"] == perceptual.library_versions()
    entry = data["cases"]["kite"]
    assert entry["prompt_sha256"] == perceptual.sha256(b"A red kite over the dunes")
    (image,) = entry["images"]
    assert list(image) == ["accepted", "ext", "hashes", "height", "sha256", "width"]
    assert (image["width"], image["height"]) == (256, 256)
    assert len(image["hashes"]["phash"]) == 16 and int(image["hashes"]["phash"], 16) >= 0
    assert set(image["hashes"]) == {"phash", "colorhash"}
    stored = recorded.path / "prompt_suites/cassettes/images" / f"{image['sha256']}.png"
    assert perceptual.sha256(stored.read_bytes()) == image["sha256"]
    # rewriting the same content gives the same bytes (stable order, readable diffs)
    recorded.runpytest(UPDATE).assert_outcomes(passed=1)
    again = json.loads((recorded.path / BASELINE).read_text())
    again["cases"]["kite"]["images"][0]["accepted"] = image["accepted"]
    approved = again["cases"]["kite"].pop("approved")  # SPEC §17: who accepted, when
    assert set(approved) == {"time", "by", "cost_per_accepted"}
    assert again == data


def test_unchanged_replay_passes_with_zero_distance(recorded: pytest.Pytester) -> None:
    result = recorded.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((recorded.path / "r.json").read_text())["cases"]
    assert case["drift"]["status"] == "pass"
    assert case["drift"]["images"][0]["distances"] == {"phash": 0, "colorhash": 0}
    assert case["drift"]["thresholds"] == {"phash": 10, "colorhash": 4}


def test_missing_baseline_in_none_mode_says_how_to_accept(recorded: pytest.Pytester) -> None:
    (recorded.path / BASELINE).unlink()
    result = recorded.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "no accepted baseline for prompt_suites/s.yaml::kite in prompt_suites/baselines/s.json;*"
            "`pytest --imagegen-update-baselines prompt_suites/s.yaml::kite`"
        ]
    )
    recorded.runpytest(UPDATE).assert_outcomes(passed=1)
    recorded.runpytest().assert_outcomes(passed=1)


# ------------------------------------------------------------------- compare


def test_reencoded_picture_passes(recorded: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    kite(recorded, fmt="jpeg")  # same picture from the server, now a JPEG: new bytes
    result = recorded.runpytest("--imagegen-record-mode=new_episodes", "--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    assert live_env.requests == 1
    (case,) = json.loads((recorded.path / "r.json").read_text())["cases"]
    distances = case["drift"]["images"][0]["distances"]
    assert distances["phash"] <= 10 and distances["colorhash"] <= 4


def test_changed_picture_fails_with_distances_then_update_accepts(
    recorded: pytest.Pytester, live_env
) -> None:  # type: ignore[no-untyped-def]
    live_env.seed = 7  # a model update: every picture changes
    result = recorded.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "visual drift from the accepted baseline (prompt_suites/baselines/s.json, key 'kite'):*",
            "  image 1: phash * > 10, colorhash * 4  DRIFTED",
            "  review: run again with --imagegen-html=DIR",
            "  accept if intended: `pytest --imagegen-update-baselines prompt_suites/s.yaml::kite`",
            "visual drift failures: 1  drift warnings: 0",
        ]
    )
    assert (recorded.path / "prompt_suites/cassettes/s/kite.yaml").exists()  # paid for: kept
    recorded.runpytest().assert_outcomes(failed=1)  # the replay drifts too
    result = recorded.runpytest(UPDATE)  # accept, from the replay: nothing sent
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["baselines written: prompt_suites/baselines/s.json (accepted 1)"])
    assert live_env.requests == 1
    recorded.runpytest().assert_outcomes(passed=1)


def test_warn_mode_passes_with_a_warning(recorded: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    live_env.seed = 7
    result = recorded.runpytest(ALL, "--imagegen-drift=warn")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*DriftWarning: visual drift from the accepted baseline*"])
    result.stdout.fnmatch_lines(["visual drift failures: 0  drift warnings: 1"])
    before = (recorded.path / BASELINE).read_text()
    assert json.loads(before)["cases"]["kite"]["images"]  # warn does not accept
    recorded.runpytest().assert_outcomes(failed=1)


def test_off_mode_and_drift_off_in_yaml(recorded: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    live_env.seed = 7
    recorded.runpytest(ALL, "--imagegen-drift=off").assert_outcomes(passed=1)
    (recorded.path / BASELINE).unlink()
    recorded.runpytest("--imagegen-drift=off").assert_outcomes(passed=1)
    kite(recorded, extra="        expect: {drift: off}\n")
    recorded.runpytest().assert_outcomes(passed=1)
    assert not (recorded.path / BASELINE).exists()


def test_thresholds_from_yaml_and_ini(recorded: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    live_env.seed = 7
    kite(recorded, extra="        expect: {drift: {phash: 64, colorhash: 64}}\n")
    recorded.runpytest(ALL).assert_outcomes(passed=1)  # huge thresholds: anything goes
    kite(recorded)
    recorded.makeini("[pytest]\nimagegen_drift_phash = 64\nimagegen_drift_colorhash = 64\n")
    recorded.runpytest().assert_outcomes(passed=1)


def test_multi_sample_baseline_uses_the_nearest_image(recorded: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    live_env.seed = 7
    recorded.runpytest(ALL, "--imagegen-add-baselines").assert_outcomes(passed=1)
    images = baseline_json(recorded)["cases"]["kite"]["images"]
    assert len(images) == 2  # two accepted runs
    recorded.runpytest().assert_outcomes(passed=1)  # seed 7 image: matches sample 2
    live_env.seed = 0
    recorded.runpytest(ALL).assert_outcomes(passed=1)  # seed 0 image: matches sample 1
    live_env.seed = 3
    recorded.runpytest(ALL).assert_outcomes(failed=1)  # near neither


def test_n_images_each_compared_to_the_nearest(project: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    kite(project, n=2)
    project.runpytest(ONCE, "-p", "no:randomly").assert_outcomes(passed=1)
    assert len(baseline_json(project)["cases"]["kite"]["images"]) == 2
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert [i["distances"]["phash"] for i in case["drift"]["images"]] == [0, 0]


def test_identical_bytes_are_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_picture(render_picture("x", 64, 64), "png", None)
    entries = accept_images([data], ["phash"], ImageStore(tmp_path))
    baseline = [e.to_json() for e in entries]

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image that is byte-identical to the baseline")

    monkeypatch.setattr(perceptual, "compute_hashes", no_decoding)
    source = HashSource(BaselineFile(tmp_path / "b.json"), tmp_path)
    (drift,) = compare([data], baseline, {"phash": 10, "colorhash": 4}, source)
    assert drift.distances == {"phash": 0, "colorhash": 0} and not drift.over


# --------------------------------------------------------- version mismatch


def test_outdated_hashes_are_recomputed_from_stored_images(
    recorded: pytest.Pytester, live_env
) -> None:  # type: ignore[no-untyped-def]
    data = baseline_json(recorded)
    image = data["cases"]["kite"]["images"][0]
    image["hashes"] = {"phash": "0" * 16, "colorhash": "0" * 14}  # garbage hashes
    (recorded.path / BASELINE).write_text(json.dumps(data))
    kite(recorded, fmt="jpeg")  # new bytes: the hashes must really be compared
    recorded.runpytest("--imagegen-record-mode=new_episodes").assert_outcomes(failed=1)
    data["versions"]["imagehash"] = "0.1"  # made by another imagehash: not trusted
    (recorded.path / BASELINE).write_text(json.dumps(data))
    result = recorded.runpytest("--imagegen-record-mode=new_episodes")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert out.count("hashes were made with imagehash 0.1") == 1
    result.stdout.fnmatch_lines(
        [
            "prompt_suites/baselines/s.json: hashes were made with imagehash 0.1 (running *); "
            "recomputed from the stored images (run --imagegen-update-baselines to store fresh ones)"
        ]
    )


# -------------------------------------------------------------- update / prune

THREE = """
    defaults: {size: 256x256, quality: low}
    cases:
      - {id: a, prompt: "one"}
      - {id: b, prompt: "two"}
"""


def _three(project: pytest.Pytester) -> None:
    write_suite(project, "s", THREE + '      - {id: c, prompt: "three"}\n')
    project.runpytest(ONCE).assert_outcomes(passed=3)
    write_suite(project, "s", THREE)  # case c deleted


@pytest.mark.parametrize(
    "args, pruned",
    [
        ([], True),
        pytest.param(["-n", "2"], True, marks=needs_xdist, id="xdist"),
        (["-k", "not b"], False),
        (["prompt_suites/s.yaml::a", "prompt_suites/s.yaml::b"], True),
        (["prompt_suites/s.yaml::a"], False),
    ],
)
def test_update_prunes_only_suites_collected_in_full(
    project: pytest.Pytester, live_env, args: list[str], pruned: bool
) -> None:  # type: ignore[no-untyped-def]
    _three(project)
    result = project.runpytest(UPDATE, *args)
    assert result.ret == 0
    keys = sorted(baseline_json(project)["cases"])
    assert keys == (["a", "b"] if pruned else ["a", "b", "c"])
    if pruned:
        result.stdout.fnmatch_lines(["baselines written: *s.json (accepted 2, removed 1 (c))"])


def test_update_does_not_prune_a_suite_that_failed_to_collect(
    project: pytest.Pytester, live_env
) -> None:  # type: ignore[no-untyped-def]
    _three(project)
    write_suite(project, "s", THREE + "      - {id: d, prompt: ''}\n")  # invalid
    result = project.runpytest(UPDATE)
    assert result.ret == 2
    assert sorted(baseline_json(project)["cases"]) == ["a", "b", "c"]


@needs_xdist
def test_update_under_xdist_writes_every_case(project: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    cases = "\n".join(f'  - {{id: c{i}, prompt: "p{i}"}}' for i in range(6))
    write_suite(project, "s", f"defaults: {{size: 256x256, quality: low}}\ncases:\n{cases}\n")
    project.runpytest("-n", "2", ONCE).assert_outcomes(passed=6)
    assert sorted(baseline_json(project)["cases"]) == [f"c{i}" for i in range(6)]
    (project.path / BASELINE).unlink()
    project.runpytest("-n", "2", UPDATE).assert_outcomes(passed=6)
    assert sorted(baseline_json(project)["cases"]) == [f"c{i}" for i in range(6)]


# -------------------------------------------------------------- calibration


def _variants(picture: Image.Image) -> dict[str, bytes]:
    def png(img: Image.Image) -> bytes:
        return encode_picture(img, "png", None)

    jpeg = io.BytesIO()
    picture.save(jpeg, "JPEG", quality=85)
    rng = np.random.default_rng(1)
    noisy = np.asarray(picture).astype(np.int16) + rng.integers(-6, 7, (*picture.size[::-1], 3))
    return {
        "jpeg": jpeg.getvalue(),
        "noise": png(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))),
        "resize-1px": png(picture.resize((picture.width - 1, picture.height - 1))),
    }


PROMPTS = ["Studio product photo of a sneaker", "Latte art heart", "Abstract teal waves banner"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_thresholds_separate_reencodes_from_new_pictures(
    tmp_path: Path, prompt: str
) -> None:
    """Measured on 1024x1024 fake-server pictures (README table): re-encodes stay at
    phash <= 2 and colorhash <= 2; a different picture for the same case is at
    phash >= 22 and colorhash >= 6. Defaults: phash 10, colorhash 4."""
    picture = render_picture(f"{prompt}|1024x1024|low|0|0", 1024, 1024)
    original = encode_picture(picture, "png", None)
    store = ImageStore(tmp_path / "images")
    baseline = tmp_path / "b.json"
    entries = [e.to_json() for e in accept_images([original], [], store)]
    cache = {baseline: BaselineFile(baseline, cases={"k": {"images": entries}})}
    cache[baseline].versions = perceptual.library_versions()
    common = dict(
        nodeid="n", key="k", prompt=prompt, baseline_file=baseline, images_dir=store.directory,
        thresholds={"phash": 10, "colorhash": 4}, mode="fail", update=None, recorded=False,
        cache=cache,
    )  # fmt: skip
    for name, data in _variants(picture).items():
        result = check(images=[data], **common)  # type: ignore[arg-type]
        distances = result.data["images"][0]["distances"]
        assert result.status == "pass", (name, distances)
        assert distances["phash"] <= 4 and distances["colorhash"] <= 2, (name, distances)
    other = encode_picture(render_picture(f"{prompt}|1024x1024|low|7|0", 1024, 1024), "png", None)
    result = check(images=[other], **common)  # type: ignore[arg-type]
    distances = result.data["images"][0]["distances"]
    assert result.status == "fail"
    assert distances["phash"] >= 16 and distances["colorhash"] >= 5, distances


def test_other_algorithms_are_selectable(project: pytest.Pytester, live_env) -> None:  # type: ignore[no-untyped-def]
    kite(project, extra="        expect: {drift: {dhash: 12, whash: 12}}\n")
    project.runpytest(ONCE).assert_outcomes(passed=1)
    (image,) = baseline_json(project)["cases"]["kite"]["images"]
    assert set(image["hashes"]) == {"phash", "colorhash", "dhash", "whash"}
    result = project.runpytest("--imagegen-report=r.json")
    result.assert_outcomes(passed=1)
    (case,) = json.loads((project.path / "r.json").read_text())["cases"]
    assert case["drift"]["thresholds"] == {"phash": 10, "colorhash": 4, "dhash": 12, "whash": 12}
    live_env.seed = 7
    result = project.runpytest(ALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  image 1: phash *, colorhash *, dhash * > 12, whash * DRIFTED"])
