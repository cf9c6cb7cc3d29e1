"""SPEC §18: pruning unreferenced sidecars, and an object store behind them.

The store tests talk to a real S3-compatible server on loopback: moto's server mode,
started here on 127.0.0.1 with a free port; the AWS variables point every client at it
(and at nothing else), with canary credentials that must never reach any output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_imagegen.cassettes import prune
from pytest_imagegen.fakeserver import FakeImagesServer

from .conftest import CANARY_KEY, needs_s3, needs_xdist, write_suite

with contextlib.suppress(ImportError):  # loaded once: pytester's in-process runs reuse it
    import fsspec
    import s3fs  # noqa: F401


AWS_KEY_ID = "AKIACANARY7Q2XG5L0ZZ"
AWS_SECRET = "canary-aws-secret-5f0c1e9d8b7a6f4e3d2c1b0a"
IMAGES = Path("prompt_suites/cassettes/images")
SUITE = """
    defaults: {{size: 256x256, quality: low}}
    cases:
{cases}
"""


def suite_text(**prompts: str) -> str:
    cases = "\n".join(f'      - {{id: {k}, prompt: "{v}"}}' for k, v in prompts.items())
    return SUITE.format(cases=cases)


def sidecars(root: Path) -> dict[str, int]:
    folder = root / IMAGES
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def age(root: Path, seconds: float = 600) -> None:
    """Make every sidecar older than the prune's grace period (as after an afternoon)."""
    past = time.time() - seconds
    for path in root.rglob("cassettes/images/*"):
        os.utime(path, (past, past))


def referenced(root: Path) -> set[str]:
    """Every sha256 the cassettes and baselines under ``root`` name (read independently)."""
    out: set[str] = set()
    for path in [*root.rglob("cassettes/**/*.yaml"), *root.rglob("baselines/*.json")]:
        out |= set(re.findall(r"[0-9a-f]{64}", path.read_text()))
    return out


# ------------------------------------------------------------------------- prune


@pytest.fixture
def two_suites(project: pytest.Pytester, live_env: FakeImagesServer) -> pytest.Pytester:
    """Suites a and b share one images folder; a was re-recorded (its old image is
    orphaned), b changed without accepting (its old image is named by b's baseline only)."""
    write_suite(project, "a", suite_text(kite="A red kite", owl="A snowy owl"))
    write_suite(project, "b", suite_text(fox="A fox in the snow"))
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=3)
    write_suite(project, "a", suite_text(kite="A blue kite", owl="A snowy owl"))
    project.runpytest(
        "--imagegen-record-mode=new_episodes", "--imagegen-update-baselines", "prompt_suites/a.yaml"
    ).assert_outcomes(passed=2)
    write_suite(project, "b", suite_text(fox="A fox in the rain"))
    project.runpytest("--imagegen-record-mode=new_episodes", "prompt_suites/b.yaml")
    return project


def test_prune_lists_then_deletes_only_what_nothing_references(
    two_suites: pytest.Pytester,
) -> None:
    project = two_suites
    before = sidecars(project.path)
    keep = referenced(project.path)
    orphans = {name for name in before if name[:64] not in keep}
    assert len(before) == 5 and len(orphans) == 1  # the red kite, nothing else
    (orphan,) = orphans
    fox_baseline = (project.path / "prompt_suites/baselines/b.json").read_text()
    b_cassette = (project.path / "prompt_suites/cassettes/b/fox.yaml").read_text()
    only_baseline = [n for n in before if n[:64] in fox_baseline and n[:64] not in b_cassette]
    assert len(only_baseline) == 1  # the first fox: kept by suite b's baseline alone
    images = project.path / IMAGES
    (images / f"{orphan[:64]}.ocr.json").write_text(f'{{"sha256": "{orphan[:64]}", "lines": []}}')
    kept_ocr = images / f"{only_baseline[0][:64]}.ocr.json"
    kept_ocr.write_text("{}")
    age(project.path)

    listed = project.runpytest("--imagegen-prune")
    assert listed.ret == 0
    out = listed.stdout.str()
    assert "imagegen prune" in out and "passed" not in out  # no test ran
    size = (images / orphan).stat().st_size
    listed.stdout.fnmatch_lines(
        [
            f"{orphan[:64]}  *prompt_suites/cassettes/images/{orphan[:64]}.ocr.json",
            f"{orphan[:64]}  *{prune.human(size)}  prompt_suites/cassettes/images/{orphan}",
            "unreferenced: 2 file(s), *",
            "delete them with `pytest --imagegen-prune=delete`",
        ]
    )
    assert only_baseline[0][:64] not in out
    assert sidecars(project.path).keys() == {*before, f"{orphan[:64]}.ocr.json", kept_ocr.name}

    deleted = project.runpytest("--imagegen-prune=delete")
    assert deleted.ret == 0
    deleted.stdout.fnmatch_lines(
        [f"deleted prompt_suites/cassettes/images/{orphan} *", "deleted: 2 file(s), *"]
    )
    assert set(sidecars(project.path)) == (set(before) - {orphan}) | {kept_ocr.name}
    # everything still replays (suite b's drift failure is its own business)
    project.runpytest("prompt_suites/a.yaml").assert_outcomes(passed=2)
    again = project.runpytest("--imagegen-prune=delete")
    again.stdout.fnmatch_lines(["unreferenced: 0 file(s), 0 B", "deleted: 0 file(s), 0 B"])


def test_a_damaged_cassette_stops_deletion_and_a_pending_one_keeps_its_images(
    two_suites: pytest.Pytester,
) -> None:
    project = two_suites
    before = sidecars(project.path)
    (orphan,) = (n for n in before if n[:64] not in referenced(project.path))
    # a paid answer kept beside a cassette whose writing failed names the orphan
    old = project.path / "prompt_suites/cassettes/a/kite.yaml"
    pending = old.with_name("kite.pending.yaml")
    pending.write_text(f"version: 1\ninteractions: []\nimagegen: {{images: [{orphan}]}}\n")
    # and one in the project's state folder, where the pipeline keeps answers it could not
    # write (images inline; any sidecar it names is kept all the same)
    fox = (project.path / "prompt_suites/cassettes/b/fox.yaml").read_text()
    fox_baseline = (project.path / "prompt_suites/baselines/b.json").read_text()
    (rain,) = (n for n in before if n[:64] in fox and n[:64] not in fox_baseline)
    kept = project.path / ".imagegen" / "pending" / ("f" * 32 + ".yaml")
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(f"version: 1\ninteractions: []\nimagegen: {{images: [{rain}]}}\n")
    damaged = project.path / "prompt_suites/cassettes/b/fox.yaml"
    damaged.write_text("interactions: [unclosed\n")
    age(project.path)
    result = project.runpytest("--imagegen-prune=delete")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "cannot tell what it references: cassette prompt_suites/cassettes/b/fox.yaml is "
            "damaged: not valid YAML*",
            "nothing was deleted: 1 cassette or baseline file(s) cannot be read*",
        ]
    )
    assert sidecars(project.path) == before
    damaged.unlink()
    result = project.runpytest("--imagegen-prune=delete")
    assert result.ret == 0
    assert orphan in sidecars(project.path)  # the pending cassette references it
    assert rain in sidecars(project.path)  # its cassette is gone, the kept answer names it
    assert "deleted: 0 file(s)" in result.stdout.str()


def test_new_files_are_kept_for_a_minute(two_suites: pytest.Pytester) -> None:
    """Images are written before the cassette that names them: a young orphan may be a
    recording in progress."""
    age(two_suites.path, seconds=0)
    before = sidecars(two_suites.path)
    result = two_suites.runpytest("--imagegen-prune=delete")
    result.stdout.fnmatch_lines(
        ["unreferenced: 0 file(s), 0 B", "kept: 1 unreferenced file(s) written in the last 60 s*"]
    )
    assert sidecars(two_suites.path) == before


@needs_xdist
def test_prune_under_xdist_runs_once_and_keeps_tests_own_cassettes_images(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """Marked tests' cassettes (a judge's data-URL sidecar included) and suites: under -n 2
    the controller prunes alone, and nothing referenced goes."""
    write_suite(project, "a", suite_text(kite="A red kite"))
    project.makepyfile(
        test_app="""
        def test_poster(imagegen):
            result = imagegen.generate("A poster of a lighthouse", size="1024x1024", quality="low")
            (verdict,) = imagegen.judge(result, "a poster of a lighthouse")
        """
    )
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=2)
    tests_images = project.path / "cassettes" / "images"
    own = {p.name for p in tests_images.iterdir()}
    assert len(own) == 2  # the generated image, and the judge's downscaled copy
    orphan = tests_images / ("0" * 64 + ".png")
    orphan.write_bytes(b"\x89PNG\r\n\x1a\n not referenced")
    age(project.path)
    result = project.runpytest("-n", "2", "--imagegen-prune=delete", "-p", "no:randomly")
    assert result.ret == 0
    out = result.stdout.str()
    assert out.count("imagegen prune") == 1 and "passed" not in out
    assert f"deleted cassettes/images/{orphan.name}" in out and "deleted: 1 file(s)" in out
    assert {p.name for p in tests_images.iterdir()} == own
    assert len(sidecars(project.path)) == 1
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)  # all replay


def test_prune_value_is_checked(project: pytest.Pytester) -> None:
    result = project.runpytest("--imagegen-prune=everything")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'everything'" in result.stderr.str()


def test_a_git_lfs_pointer_is_named_as_such(
    project: pytest.Pytester, live_env: FakeImagesServer
) -> None:
    """A checkout made without Git LFS has pointer files where the images should be."""
    write_suite(project, "s", suite_text(kite="A red kite"))
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=1)
    (name,) = sidecars(project.path)
    (project.path / IMAGES / name).write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{name[:64]}\nsize 12345\n"
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*image file prompt_suites/cassettes/images/{name} is a Git LFS pointer, not the image: "
         "fetch the images with `git lfs pull`*"]
    )  # fmt: skip


# ------------------------------------------------------------------- the store


class S3Server:
    """moto's S3 server on loopback, with a log of the requests it answered."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.log: list[str] = []
        self.bucket = f"imagegen-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> S3Server:
        handler = logging.Handler()
        handler.emit = lambda record: self.log.append(  # type: ignore[method-assign]
            re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
        )
        self.handler = handler
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.addHandler(handler)
        werkzeug.setLevel(logging.INFO)
        werkzeug.propagate = False
        self.server.start()
        inner: Any = self.server._server  # get_host_and_port() is newer than moto 5.0
        host, port = inner.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        logging.getLogger("werkzeug").removeHandler(self.handler)

    def fs(self) -> Any:
        return fsspec.filesystem("s3", skip_instance_cache=True)

    def requests(self, method: str) -> list[str]:
        return [line for line in self.log if f'"{method} /{self.bucket}/' in line]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a metadata service
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # an unreachable store fails at once
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    with S3Server() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        server.fs().mkdir(server.bucket)
        yield server


def checkout(
    pytester: pytest.Pytester, name: str, bucket: str, cache: str, suite: str = ""
) -> Path:
    """A project folder ``name`` whose ini names the store (and its suite ``s``)."""
    root = pytester.path / name
    (root / "prompt_suites").mkdir(parents=True)
    (root / "prompt_suites" / "s.yaml").write_text(textwrap.dedent(suite).lstrip())
    (root / "pytest.ini").write_text(
        textwrap.dedent(
            f"""
            [pytest]
            imagegen_backoff = 0.01
            imagegen_image_store = s3://{bucket}/team/images
            imagegen_image_cache = {cache}
            """
        )
    )
    return root


def clone(src: Path, dst: Path, cache: str) -> None:
    """A fresh checkout of what git holds: cassettes and baselines, no image sidecars."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.png", ".imagegen", "*-cache"))
    ini = (dst / "pytest.ini").read_text()
    (dst / "pytest.ini").write_text(
        re.sub(r"imagegen_image_cache = .*", f"imagegen_image_cache = {cache}", ini)
    )


def dead_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a closed loopback port


THREE = suite_text(kite="A red kite", owl="A snowy owl", fox="A fox in the snow")


@needs_s3
def test_record_upload_replay_from_the_store_then_offline_from_the_cache(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Record in one checkout; replay in a fresh one (no sidecars) from the store, two xdist
    workers filling one cache; then offline from the warm cache."""
    workers = ["-n", "2"] if importlib.util.find_spec("xdist") else []
    one = checkout(project, "one", s3.bucket, "one-cache", THREE)
    monkeypatch.chdir(one)
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=3)
    local = sidecars(one)
    assert len(local) == 3
    stored = s3.fs().ls(f"{s3.bucket}/team/images", detail=False)
    assert sorted(p.rsplit("/", 1)[1] for p in stored) == sorted(local)
    for name in local:  # raw bytes, content-addressed
        remote = s3.fs().cat_file(f"{s3.bucket}/team/images/{name}")
        assert remote == (one / IMAGES / name).read_bytes()
    assert len(s3.requests("PUT")) == 3  # each uploaded once
    project.runpytest("--imagegen-record-mode=all").assert_outcomes(passed=3)
    assert len(s3.requests("PUT")) == 3  # the same images again: nothing uploaded twice
    assert not (one / "one-cache").exists()  # recording needs no cache

    two = project.path / "two"
    clone(one, two, "two-cache")
    assert sidecars(two) == {}  # the images are not in git
    monkeypatch.chdir(two)
    monkeypatch.setenv("IMAGEGEN_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("IMAGEGEN_API_KEY")
    gets = len(s3.requests("GET"))
    result = project.runpytest(*workers)
    result.assert_outcomes(passed=3)
    assert len(s3.requests("GET")) == gets + 3
    cached = sorted(p.name for p in (two / "two-cache").iterdir())
    assert cached == sorted(local) and sidecars(two) == {}  # the repository stays clean
    assert not list((two / "two-cache").glob(".*"))  # no temp file left behind

    dead_store(monkeypatch)  # offline: the warm cache is all it needs
    log = len(s3.log)
    result = project.runpytest("--imagegen-html=review")
    result.assert_outcomes(passed=3)
    assert len(s3.log) == log
    page = (two / "review" / "index.html").read_text()
    assert page.count("<img src=") == 6  # baseline and current, from the cache
    previews = {p.name.split(".")[0] for p in (two / "review" / "previews").iterdir()}
    assert {name[:64] for name in local} <= previews  # made from the cached images


def recorded_kite(project: pytest.Pytester, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Checkout "one" with the store and its one kite case recorded (the cwd is there)."""
    one = checkout(project, "one", s3.bucket, "cache", suite_text(kite="A red kite"))
    monkeypatch.chdir(one)
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=1)
    return one


@needs_s3
def test_a_cold_cache_with_the_store_unreachable_fails_naming_both(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = recorded_kite(project, s3, monkeypatch)
    (name,) = sidecars(one)
    (one / IMAGES / name).unlink()
    dead_store(monkeypatch)
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    out = " ".join(result.stdout.str().split())
    assert (
        f"image {name} is neither in prompt_suites/cassettes/images nor in the cache cache, "
        f"and the image store s3://{s3.bucket}/team/images cannot be reached "
        "(EndpointConnectionError: Could not connect to the endpoint URL" in out
    ), out
    assert "(referenced by cassette prompt_suites/cassettes/s/kite.yaml)" in out
    assert "check the network and the store's credentials" in out
    assert "or re-record it with `pytest --imagegen-record-mode=all" in out
    assert "Traceback" not in out


@needs_s3
def test_a_corrupt_object_in_the_store_is_refused(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = recorded_kite(project, s3, monkeypatch)
    (name,) = sidecars(one)
    (one / IMAGES / name).unlink()
    key = f"{s3.bucket}/team/images/{name}"
    good = s3.fs().cat_file(key)
    s3.fs().pipe_file(key, good[:-10] + b"tampered!!")
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    out = " ".join(result.stdout.str().split())
    assert (
        f"image {name} in the image store s3://{s3.bucket}/team/images is corrupt: its sha256 is"
        in out
    ), out
    assert "it was refused (not used, not cached)" in out
    assert f"replace the object {s3.bucket}/team/images/{name} with a good copy" in out
    assert not (one / "cache").exists() or not list((one / "cache").iterdir())
    s3.fs().pipe_file(key, good)  # restored: replays again
    project.runpytest().assert_outcomes(passed=1)


@needs_s3
def test_an_upload_that_fails_keeps_the_recording_and_is_completed_later(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = checkout(project, "one", s3.bucket, "cache", suite_text(kite="A red kite"))
    monkeypatch.chdir(one)
    dead_store(monkeypatch)
    result = project.runpytest("--imagegen-record-mode=once", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    out = " ".join(result.stdout.str().split())
    assert "could not be uploaded to the image store" in out and "nothing is lost" in out, out
    assert live_env.requests == 1 and len(sidecars(one)) == 1
    assert (one / "prompt_suites/cassettes/s/kite.yaml").is_file()  # the paid answer is kept
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=1)
    assert live_env.requests == 1  # nothing paid again
    (name,) = sidecars(one)
    assert s3.fs().cat_file(f"{s3.bucket}/team/images/{name}") == (one / IMAGES / name).read_bytes()


@needs_s3
def test_prune_with_a_store_deletes_remote_objects_only_when_asked(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = recorded_kite(project, s3, monkeypatch)
    (first,) = sidecars(one)
    (one / "prompt_suites/s.yaml").write_text(textwrap.dedent(suite_text(kite="A blue kite")))
    project.runpytest(
        "--imagegen-record-mode=new_episodes", "--imagegen-update-baselines"
    ).assert_outcomes(passed=1)
    (second,) = set(sidecars(one)) - {first}
    monkeypatch.setattr(prune, "GRACE_SECONDS", 0.0)  # in-process: no minute to wait
    folder = f"{s3.bucket}/team/images"

    def objects() -> set[str]:
        return {p.rsplit("/", 1)[1] for p in s3.fs().ls(folder, detail=False, refresh=True)}

    listed = project.runpytest("--imagegen-prune")
    listed.stdout.fnmatch_lines(
        [
            f"{first[:64]}  * prompt_suites/cassettes/images/{first}",
            "unreferenced: 1 file(s), *",
            f"{first[:64]}  * s3://{folder}/{first}",
            f"unreferenced in the image store s3://{folder}: 1 file(s), *",
        ]
    )
    project.runpytest("--imagegen-prune=delete").stdout.fnmatch_lines(
        ["the image store's 1 unreferenced object(s) are kept*", "deleted: 1 file(s), *"]
    )
    assert set(sidecars(one)) == {second} and objects() == {first, second}
    project.runpytest("--imagegen-prune=delete-remote").stdout.fnmatch_lines(
        [f"deleted s3://{folder}/{first} *", "deleted: 1 file(s), *"]
    )
    assert objects() == {second} and set(sidecars(one)) == {second}
    project.runpytest().assert_outcomes(passed=1)


@needs_s3
def test_store_credentials_never_reach_any_output(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The canary AWS credentials: not in the terminal (-l, -vv, -rA), JUnit, reports,
    cassettes, the cache or the store, even when a test prints the environment."""
    one = checkout(project, "one", s3.bucket, "cache", suite_text(kite="A red kite"))
    (one / "test_env.py").write_text(
        textwrap.dedent(
            """
            import os

            def test_dumps_the_environment():
                print(dict(os.environ))
                assert False, dict(os.environ)
            """
        )
    )
    monkeypatch.chdir(one)
    args = ("-l", "-vv", "-rA", "--junitxml=junit.xml", "--imagegen-report=r.json")
    outputs = []
    for extra in (["--imagegen-record-mode=once"], [], ["--imagegen-prune"]):
        result = project.runpytest(*args, *extra, "-p", "no:randomly")
        outputs.append(result.stdout.str() + result.stderr.str())
    (name,) = sidecars(one)
    (one / IMAGES / name).unlink()
    dead_store(monkeypatch)
    result = project.runpytest(*args, "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    outputs.append(result.stdout.str() + result.stderr.str())
    assert "cannot be reached" in outputs[-1]
    assert "AKI…L0ZZ" in outputs[-1]  # the environment dump was masked, not dropped
    files = [p for p in project.path.rglob("*") if p.is_file()]
    texts = [*outputs, *(p.read_bytes().decode("latin-1") for p in files)]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    stored = s3.fs().find(s3.bucket)
    assert stored  # the images were uploaded
    texts += [s3.fs().cat_file(p).decode("latin-1") for p in stored]
    for secret in (AWS_SECRET, AWS_KEY_ID, CANARY_KEY):
        assert not [t[:200] for t in texts if secret in t], secret


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "bucket-without-scheme",
            "'bucket-without-scheme' is not a URL such as s3://bucket/prefix",
        ),
        ("nosuchproto://user:hunter22@host/x", "nosuchproto://host/x: "),
    ],
)
def test_a_bad_store_url_is_a_usage_error(project: pytest.Pytester, url: str, message: str) -> None:
    pytest.importorskip("fsspec")
    project.makeini(f"[pytest]\nimagegen_image_store = {url}\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"pytest-imagegen: ini imagegen_image_store: {message}" in err, err
    assert "hunter22" not in err  # a URL is never shown with its password


@needs_s3
def test_approving_an_image_kept_only_in_the_store(
    project: pytest.Pytester,
    live_env: FakeImagesServer,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--imagegen-approve in a checkout whose images are only in the store: the approved
    image is fetched (verified) instead of being refused as "not in the image store"."""
    one = checkout(project, "one", s3.bucket, "one-cache", THREE)
    monkeypatch.chdir(one)
    project.runpytest("--imagegen-record-mode=once").assert_outcomes(passed=3)
    live_env.seed = 7  # a new look: re-record one case, then approve its new image
    project.runpytest(
        "--imagegen-record-mode=all", "-k", "kite", "--imagegen-report=r.json"
    ).assert_outcomes(failed=1)
    report = json.loads((one / "r.json").read_text())
    (kite,) = report["cases"]
    new = kite["drift"]["images"][0]["sha256"]
    two = project.path / "two"
    clone(one, two, "two-cache")
    monkeypatch.chdir(two)
    (two / "approvals.json").write_text(
        json.dumps(
            {"format": 1, "approvals": [{"nodeid": kite["nodeid"], "images": [{"sha256": new}]}]}
        )
    )
    result = project.runpytest("--imagegen-approve=approvals.json")
    result.stdout.fnmatch_lines(["*approved 1 image(s) of 1 case(s)*"])
    baseline = json.loads((two / "prompt_suites/baselines/s.json").read_text())
    assert [i["sha256"] for i in baseline["cases"]["kite"]["images"]] == [new]
