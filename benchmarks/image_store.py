"""Image store: repository bytes after re-records, with and without pruning; replay from the
store's local cache vs from sidecars in the repository.

    python benchmarks/image_store.py [--cases 20] [--rerecords 5] [--size 1024x1024] [--rounds 3]

1. Records N cases from the fake server, then re-records all of them R times (new prompts
   each time, the new images accepted as baselines), with ``--imagegen-prune=delete``
   after each re-record (the files aged past the prune's one-minute grace first, as when
   re-records are minutes apart). Repository bytes per case (cassettes, image sidecars,
   baselines): with prune, what is on disk; without, that plus everything prune removed
   (content-addressed files are never written twice, so this is exactly what a project
   that never prunes holds). Target (issue 22): with prune <= 1.05x one recording.
2. The same N cases recorded with ``imagegen_image_store`` on moto's S3 server (loopback,
   started here), then replayed offline with the sidecars in the repository, and with
   a checkout without them from a warm cache (one cold replay filled it), in alternation.
   Per case: wall time around each test (setup, call, teardown), the mean without the
   slowest, best of ``--rounds``. Target: <= 1.2x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    KEY,
    TIMER,
    fake_server,
    protocol_times,
    pytest_args,
    ratio_line,
    run,
    workdir,
    write,
)

OFFLINE = {"IMAGEGEN_BASE_URL": "http://127.0.0.1:9/v1", "IMAGEGEN_API_KEY": ""}


def suite(n: int, size: str, take: int) -> str:
    lines = [f"defaults: {{model: gpt-image-2, quality: low, size: {size}}}", "cases:"]
    for i in range(n):
        prompt = f"Store benchmark picture {i}, take {take}, a lighthouse at dusk"
        lines.append(f"  - {{id: c{i:03d}, prompt: {json.dumps(prompt)}}}")
    return "\n".join(lines) + "\n"


def repo_bytes(project: Path) -> int:
    suites = project / "prompt_suites"
    return sum(
        p.stat().st_size
        for p in suites.rglob("*")
        if p.is_file() and ".imagegen" not in p.relative_to(suites).parts
    )


def age(project: Path) -> None:
    past = time.time() - 3600
    for path in (project / "prompt_suites" / "cassettes" / "images").iterdir():
        os.utime(path, (past, past))


def rerecords(root: Path, url: str, n: int, r: int, size: str) -> tuple[float, float, float]:
    """Bytes per case: one recording, after ``r`` re-records without and with prune."""
    project = root / "rerecord"
    write(project / "pytest.ini", "[pytest]\n")
    env = {"IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY}
    write(project / "prompt_suites" / "s.yaml", suite(n, size, 0))
    run(pytest_args("--imagegen-record-mode=once"), project, env=env)
    once = repo_bytes(project)
    removed = 0
    for take in range(1, r + 1):
        write(project / "prompt_suites" / "s.yaml", suite(n, size, take))
        run(
            pytest_args("--imagegen-record-mode=new_episodes", "--imagegen-update-baselines"),
            project,
            env=env,
        )
        age(project)
        before = repo_bytes(project)
        run(pytest_args("--imagegen-prune=delete"), project, env=env)
        removed += before - repo_bytes(project)
    kept = repo_bytes(project)
    return once / n, (kept + removed) / n, kept / n


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 and the environment that points AWS clients at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address[:2]  # type: ignore[attr-defined]
    env = {
        "AWS_ACCESS_KEY_ID": "benchmark-key-id",
        "AWS_SECRET_ACCESS_KEY": "benchmark-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        import fsspec

        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench")
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def per_case(project: Path, env: dict[str, str]) -> float:
    """One offline replay; seconds per case (perf_counter around each test's protocol; the
    slowest, the first case's lazy imports, left out)."""
    run(pytest_args(), project, env={**env, **OFFLINE})
    times = sorted(protocol_times(project).values())
    return statistics.mean(times[:-1] if len(times) > 1 else times)


def replays(root: Path, url: str, n: int, size: str, rounds: int) -> tuple[float, float]:
    """Per-case replay seconds: sidecars in the repository, and from the store's warm cache
    (the two replayed in alternation, best of ``rounds`` each)."""
    local = root / "store"
    ini = "[pytest]\nimagegen_image_store = s3://bench/images\nimagegen_image_cache = cache\n"
    write(local / "pytest.ini", ini)
    write(local / "conftest.py", TIMER)
    write(local / "prompt_suites" / "s.yaml", suite(n, size, 0))
    with s3_server() as aws:
        env = {**aws, "IMAGEGEN_BASE_URL": url, "IMAGEGEN_API_KEY": KEY}
        run(pytest_args("--imagegen-record-mode=once"), local, env=env)
        cached = root / "store-clone"  # a checkout without the sidecars
        shutil.copytree(local, cached, ignore=shutil.ignore_patterns("*.png", "cache"))
        per_case(cached, aws)  # cold: fills the cache from the store
        offline = {**aws, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        best_local = best_cached = float("inf")
        for _ in range(rounds):
            best_local = min(best_local, per_case(local, offline))
            best_cached = min(best_cached, per_case(cached, offline))
    return best_local, best_cached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--rerecords", type=int, default=5)
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep")
    args = parser.parse_args(argv)
    with workdir(args.keep) as root, fake_server() as url:
        n, r = args.cases, args.rerecords
        print(f"image store benchmark: {n} cases, one {args.size} PNG each, {r} re-records")
        once, without, pruned = rerecords(root, url, n, r, args.size)
        print(f"repository bytes per case: one recording {once / 1e6:.2f} MB; after {r} "
              f"re-records {without / 1e6:.2f} MB without prune, {pruned / 1e6:.2f} MB with "
              "--imagegen-prune=delete")  # fmt: skip
        print(f"{'without prune / one recording':<44} {without / once:8.3f}")
        ratio = pruned / once
        print(ratio_line("with prune / one recording", ratio, "<= 1.05", ratio <= 1.05))
        local, cached = replays(root, url, n, args.size, args.rounds)
        print(f"replay per case: sidecars in the repository {local * 1e3:.2f} ms, from the "
              f"image store's warm cache {cached * 1e3:.2f} ms (offline)")  # fmt: skip
        ratio = cached / local
        print(ratio_line("warm store cache / sidecars (per case)", ratio, "<= 1.2", ratio <= 1.2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
