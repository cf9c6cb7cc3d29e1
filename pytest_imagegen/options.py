"""The plugin's command-line options and ini keys, and the settings read from them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .api.errors import ImagegenError
from .api.providers import provider_settings
from .api.settings import (
    DRIFT_MODES,
    RECORD_MODES,
    Settings,
    check_key_lengths,
    parse_number,
    resolve_base_url,
)
from .money.prices import PriceTable

if TYPE_CHECKING:
    from .review.gate import CostLimit


def add_options(parser: pytest.Parser) -> None:
    """Every command-line option and ini key of the plugin (shown by ``pytest --help``)."""
    group = parser.getgroup("imagegen", "image generation prompt suites (pytest-imagegen)")
    group.addoption(
        "--imagegen-record-mode",
        action="store",
        default="none",
        choices=RECORD_MODES,
        help="cassette mode: none (default: replay only, never touch the network), "
        "once (record missing cassettes), new_episodes (record missing, replace stale), "
        "all (re-record everything selected; spends money).",
    )
    group.addoption(
        "--imagegen-base-url",
        action="store",
        default=None,
        metavar="URL",
        help="OpenAI-compatible images API base URL, e.g. https://api.wisgate.ai/v1 "
        "(precedence: this option > $IMAGEGEN_BASE_URL > ini imagegen_base_url > default). "
        "The API key is read only from $IMAGEGEN_API_KEY, $WISGATE_API_KEY or $OPENAI_API_KEY.",
    )
    group.addoption(
        "--imagegen-fake-server",
        action="store_true",
        default=False,
        help="send every images and chat request of the session (suites, the imagegen fixture, "
        "and marked tests whatever base URL their client names) to the built-in fake images "
        "server on 127.0.0.1 (no key needed, nothing billed; ledger lines marked fake): for "
        "demos, trying suites and recording example cassettes.",
    )
    group.addoption(
        "--imagegen-budget",
        action="store",
        default=None,
        metavar="USD",
        help="session spending cap in USD across all workers: each live request reserves its "
        "list cost before it is sent; a request that does not fit is not sent and its test fails.",
    )
    group.addoption(
        "--imagegen-estimate",
        action="store_true",
        default=False,
        help="print each selected case's list cost and the totals for a full live run and for "
        "a `once` recording (cases without a fresh cassette); send nothing, run no test.",
    )
    group.addoption(
        "--imagegen-report",
        action="store",
        default=None,
        metavar="PATH.json",
        help="write a JSON cost report (per case: list/actual cost, cassette status, outcome); "
        "use it later as --imagegen-cost-baseline.",
    )
    group.addoption(
        "--imagegen-markdown",
        action="store",
        default=None,
        metavar="PATH",
        help="write the cost report as Markdown (also appended to $GITHUB_STEP_SUMMARY when set).",
    )
    group.addoption(
        "--imagegen-cost-baseline",
        action="store",
        default=None,
        metavar="PATH.json",
        help="an earlier --imagegen-report (e.g. from the main branch): print per-case cost "
        "changes and the total change.",
    )
    group.addoption(
        "--imagegen-max-cost-increase",
        action="store",
        default=None,
        metavar="USD|N%",
        help="with --imagegen-cost-baseline: fail the session when the suite's list cost grows by "
        "more than this amount (e.g. 0.50) or percentage (e.g. 10%%).",
    )
    group.addoption(
        "--imagegen-block-network",
        action="store_true",
        default=False,
        help="fail any images API request made by a test that is neither a suite case nor "
        "marked @pytest.mark.imagegen (nothing is sent); marked tests are recorded/replayed.",
    )
    group.addoption(
        "--imagegen-ledger",
        action="store_true",
        default=False,
        help="print the spend ledger (<suites root>/.imagegen/ledger.jsonl) per category and case: "
        "iterations (distinct prompts), requests, spend; run no tests.",
    )
    group.addoption(
        "--imagegen-drift",
        action="store",
        default="fail",
        choices=DRIFT_MODES,
        help="visual drift against accepted baselines: fail (default), warn (a warning, the "
        "test passes) or off (no comparison).",
    )
    group.addoption(
        "--imagegen-update-baselines",
        action="store_true",
        default=False,
        help="accept the current images of the selected tests as their baselines (replacing "
        "the accepted ones). Entries of deleted cases are removed for suite files collected "
        "in full (no -k, no deselection, no collection error).",
    )
    group.addoption(
        "--imagegen-add-baselines",
        action="store_true",
        default=False,
        help="like --imagegen-update-baselines, but keep the accepted images and add the "
        "current ones as more samples (for cases whose look may legitimately vary).",
    )
    group.addoption(
        "--imagegen-html",
        action="store",
        default=None,
        metavar="DIR",
        help="write DIR/index.html: baseline and current images side by side, distances, "
        "costs and status per case, failures first (self-contained, images copied into DIR).",
    )
    group.addoption(
        "--imagegen-right-size",
        action="store_true",
        default=False,
        help="for every case with a matrix over size, quality, n or model: rank the variants "
        "by cost per accepted image and recommend the cheapest that reaches "
        "expect.min_accept_rate (terminal, JSON `right_size`, Markdown, HTML); with "
        "--imagegen-estimate, what recording each group would cost.",
    )
    group.addoption(
        "--imagegen-concurrency",
        action="store",
        default=None,
        metavar="N",
        help="record up to N requests at once before the tests run (then the tests replay "
        "them); default: ini imagegen_concurrency, 1 = one at a time. Under xdist each "
        "worker records its share.",
    )
    # -- review and approval (issue 21, SPEC §17) ---------------------------------------
    group.addoption(
        "--imagegen-approve",
        action="store",
        default=None,
        metavar="approvals.json",
        help="accept as baselines exactly the images named in an approvals.json downloaded "
        "from the review page (--imagegen-html), e.g. from a CI artifact; runs no test. "
        "Unknown tests, and images missing from the image store or not matching their "
        "sha256, are refused by name and nothing is written.",
    )
    group.addoption(
        "--imagegen-review",
        action="store_true",
        default=False,
        help="run the selected tests (replay unless a record mode says otherwise), then serve "
        "the review page on 127.0.0.1 (a free port, a random token in the URL printed on "
        "stdout) with Approve / Reject buttons that write baselines at once; Ctrl-C stops.",
    )
    # -- end of review and approval -------------------------------------------------------
    parser.addini(
        "imagegen_concurrency",
        default="1",
        help="requests recorded at once before the tests run (see --imagegen-concurrency)",
    )
    parser.addini(
        "imagegen_rate_limit",
        default="",
        help="images per minute for the whole session, e.g. 50/min: requests wait instead of "
        "drawing 429s (shared by the prefetch and all xdist workers)",
    )
    parser.addini(
        "imagegen_max_inflight",
        default="",
        help="requests in flight at once for the whole session (all threads and workers)",
    )
    parser.addini(
        "imagegen_suites",
        type="args",
        default=["prompt_suites"],
        help="directories (relative to the ini file) whose YAML files with a top-level "
        "`cases:` key are prompt suites (default: prompt_suites)",
    )
    parser.addini(
        "imagegen_base_url", default="", help="images API base URL (see --imagegen-base-url)"
    )
    parser.addini(
        "imagegen_timeout", default="180", help="seconds before a request times out (default 180)"
    )
    parser.addini(
        "imagegen_max_response_mb",
        default="64",
        help="largest answer read, in MB once decompressed (default 64); a bigger one is cut "
        "off and booked at list cost (an unknown outcome)",
    )
    parser.addini(
        "imagegen_max_retries",
        default="3",
        help="retries for 429 rate limits, 5xx, timeouts and dropped connections (default 3)",
    )
    parser.addini(
        "imagegen_backoff",
        default="1.0",
        help="first retry delay in seconds, doubled each retry, unless Retry-After says otherwise",
    )
    parser.addini(
        "imagegen_prices",
        default="",
        help="YAML price file merged over the shipped price table (e.g. your gateway's prices)",
    )
    parser.addini(
        "imagegen_price_multiplier",
        default="1.0",
        help="markup applied to every price (default 1.0)",
    )
    parser.addini(
        "imagegen_drift_phash",
        default="10",
        help="default phash threshold (Hamming distance, 0-64) for visual drift (default 10)",
    )
    parser.addini(
        "imagegen_drift_colorhash",
        default="4",
        help="default colorhash threshold (Hamming distance) for visual drift (default 4)",
    )
    parser.addini(
        "imagegen_default_max_cost",
        default="",
        help="USD cost ceiling for cases without max_cost (default: no ceiling)",
    )
    parser.addini(
        "imagegen_judge_model",
        default="gpt-4.1-mini",
        help="vision chat model that scores images for expect.judge (default gpt-4.1-mini)",
    )
    # --- providers (issue 23, SPEC §19) -------------------------------------------------
    parser.addini(
        "imagegen_provider",
        default="openai",
        help="request shape for models whose price entry names no provider: openai | azure | "
        "gemini (default openai); a suite, its defaults or a case may set `provider:`",
    )
    parser.addini(
        "imagegen_azure_endpoint",
        default="",
        help="Azure OpenAI resource URL, e.g. https://my-resource.openai.azure.com (default: "
        "the scheme and host of the images base URL)",
    )
    parser.addini(
        "imagegen_azure_api_version",
        default="2025-04-01-preview",
        help="api-version query parameter of Azure OpenAI requests (default 2025-04-01-preview; "
        "not part of cassette matching)",
    )
    parser.addini(
        "imagegen_deployments",
        default="",
        help="Azure deployments and the priced model each serves: `name=model ...`, e.g. "
        "`prod-image=gpt-image-2`; a case whose model is such a name is sent to Azure",
    )
    parser.addini(
        "imagegen_gemini_base_url",
        default="",
        help="root of Gemini's generateContent route (POST {root}/v1beta/models/{model}:"
        "generateContent; default: the scheme and host of the images base URL)",
    )
    # --- end providers ------------------------------------------------------------------
    parser.addini(
        "imagegen_judge_min_score",
        default="0.7",
        help="score (0..1) every image must reach for expect.judge to pass (default 0.7)",
    )
    add_store_options(group, parser)


# --- image store (issue 22): --imagegen-prune, imagegen_image_store, imagegen_image_cache
PRUNE_MODES = ("list", "delete", "delete-remote")


def add_store_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    group.addoption(
        "--imagegen-prune",
        action="store",
        nargs="?",
        const="list",
        default=None,
        choices=PRUNE_MODES,
        metavar="delete|delete-remote",
        help="list image sidecars (and their OCR caches) that no cassette, pending cassette or "
        "baseline under the suite roots and test paths references, with their size and the "
        "total; =delete removes them (the local copies only; with an image store "
        "=delete-remote also removes the store's unreferenced objects). Refuses to delete "
        "while a cassette or baseline is damaged. Runs no tests. Put it last or write "
        "--imagegen-prune=list when paths follow.",
    )
    parser.addini(
        "imagegen_image_store",
        default="",
        help="keep image sidecars in an object store as well, e.g. s3://bucket/prefix (any "
        "fsspec URL; pip install 'pytest-imagegen[s3]'): recording uploads each new image "
        "once as <prefix>/<sha256>.<ext>; a replay reads images missing from the repository "
        "through the local cache (imagegen_image_cache). Credentials: the standard AWS "
        "variables / fsspec configuration (never printed).",
    )
    parser.addini(
        "imagegen_image_cache",
        default="",
        help="folder of images fetched from imagegen_image_store, shared by sessions and "
        "xdist workers (default $IMAGEGEN_IMAGE_CACHE, else ~/.cache/pytest-imagegen/images); "
        "relative to the ini file; safe to delete at any time",
    )


def read_store_settings(config: pytest.Config, root: Path) -> tuple[str | None, Path | None]:
    """``image_store`` and ``image_cache`` of :class:`Settings` (``ImagegenError`` if invalid)."""
    url = str(config.getini("imagegen_image_store") or "").strip()
    if not url:
        return None, None
    from .cassettes.remote import store_url_problem

    problem = store_url_problem(url)
    if problem:
        raise ImagegenError(f"ini imagegen_image_store: {problem}")
    cache = str(config.getini("imagegen_image_cache") or "").strip()
    return url, (root / Path(cache).expanduser()).resolve() if cache else None


# --- end image store


def ini_dir(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


# -- issue 20 (14): edit inputs must lie inside the project
def project_root(config: pytest.Config) -> Path:
    """The project's folder: the rootdir, or the ini file's folder where that is above it
    (input images of edit cases must lie inside it)."""
    return Path(os.path.commonpath([config.rootpath, ini_dir(config)])).resolve()


# -- end issue 20 (14)


def read_settings(config: pytest.Config) -> tuple[Settings, PriceTable]:
    """Settings and prices from options, environment and ini (``ImagegenError`` if invalid)."""
    # -- issue 20 (17): a key too short to be masked is a usage error
    check_key_lengths(os.environ)
    # -- end issue 20 (17)
    base_url, source = resolve_base_url(
        config.getoption("imagegen_base_url"),
        os.environ,
        config.getini("imagegen_base_url") or None,
    )
    timeout = parse_number(config.getini("imagegen_timeout"), "ini imagegen_timeout", positive=True)
    retries = parse_number(
        config.getini("imagegen_max_retries"), "ini imagegen_max_retries", minimum=0
    )
    if retries is not None and retries != int(retries):
        raise ImagegenError(f"ini imagegen_max_retries: must be a whole number, got {retries:g}")
    backoff = parse_number(config.getini("imagegen_backoff"), "ini imagegen_backoff", minimum=0)
    multiplier = parse_number(
        config.getini("imagegen_price_multiplier"), "ini imagegen_price_multiplier", positive=True
    )
    max_cost = parse_number(
        config.getini("imagegen_default_max_cost"), "ini imagegen_default_max_cost", positive=True
    )
    thresholds = {}
    for algo in ("phash", "colorhash"):
        value = parse_number(
            config.getini(f"imagegen_drift_{algo}"), f"ini imagegen_drift_{algo}", minimum=0
        )
        if value is not None and value != int(value):
            raise ImagegenError(f"ini imagegen_drift_{algo}: must be a whole number, got {value:g}")
        thresholds[algo] = int(value) if value is not None else (10 if algo == "phash" else 4)
    html_dir = config.getoption("imagegen_html")
    root = ini_dir(config)
    suite_dirs = tuple((root / d).resolve() for d in config.getini("imagegen_suites"))
    settings = Settings(
        record_mode=config.getoption("imagegen_record_mode"),
        base_url=base_url,
        base_url_source=source,
        timeout=timeout if timeout is not None else 180.0,
        max_retries=int(retries) if retries is not None else 3,
        backoff=backoff if backoff is not None else 1.0,
        default_max_cost=max_cost,
        suite_dirs=suite_dirs,
        project_root=root.resolve(),
        drift_mode=config.getoption("imagegen_drift"),
        drift_thresholds=thresholds,
        update_baselines=(
            "add"
            if config.getoption("imagegen_add_baselines")
            else "replace"
            if config.getoption("imagegen_update_baselines")
            else None
        ),
        html_dir=(config.invocation_params.dir / html_dir).resolve() if html_dir else None,
    )
    if settings.html_dir is None and config.getoption("imagegen_review"):  # issue 21
        settings = dataclasses.replace(settings, html_dir=root.resolve() / ".imagegen" / "review")
    prices_file = config.getini("imagegen_prices")
    prices = PriceTable.load(
        (root / prices_file) if prices_file else None,
        multiplier if multiplier is not None else 1.0,
    )
    judge_model = str(config.getini("imagegen_judge_model") or "gpt-4.1-mini").strip()
    prices.chat_model(judge_model)  # an unknown judge model is a usage error, named
    min_score = parse_number(
        config.getini("imagegen_judge_min_score"), "ini imagegen_judge_min_score", minimum=0
    )
    if min_score is not None and min_score > 1:
        raise ImagegenError(f"ini imagegen_judge_min_score: must be at most 1, got {min_score:g}")
    concurrency = parse_number(
        config.getoption("imagegen_concurrency") or config.getini("imagegen_concurrency"),
        "--imagegen-concurrency / ini imagegen_concurrency",
        minimum=1,
    )
    if concurrency is not None and concurrency != int(concurrency):
        raise ImagegenError(f"--imagegen-concurrency: must be a whole number, got {concurrency:g}")
    max_mb = parse_number(
        config.getini("imagegen_max_response_mb"), "ini imagegen_max_response_mb", positive=True
    )
    providers = provider_settings(config.getini)  # issue 23
    prices.add_deployments(providers.deployments)
    settings = dataclasses.replace(
        settings,
        providers=providers,
        max_response_mb=max_mb if max_mb is not None else 64.0,
        concurrency=int(concurrency or 1),
        judge_model=judge_model,
        judge_min_score=min_score if min_score is not None else 0.7,
    )
    store, cache = read_store_settings(config, root)  # image store (issue 22)
    settings = dataclasses.replace(settings, image_store=store, image_cache=cache)
    return settings, prices


@dataclass(frozen=True)
class RunOptions:
    """Options about money and reports (resolved against the invocation directory)."""

    budget: float | None = None
    report_path: Path | None = None
    markdown_path: Path | None = None
    cost_baseline: Path | None = None
    cost_limit: CostLimit | None = None
    max_inflight: int | None = None
    rate_limit: int | None = None  # images per minute


def read_run_options(config: pytest.Config) -> RunOptions:
    """Budget, report paths, the cost gate and the rate limits (``ImagegenError`` if invalid)."""
    from .api.limiter import parse_rate
    from .review.gate import parse_cost_limit

    invocation = config.invocation_params.dir

    def path(option: str) -> Path | None:
        value = config.getoption(option)
        return (invocation / value).resolve() if value else None

    limit = config.getoption("imagegen_max_cost_increase")
    baseline = path("imagegen_cost_baseline")
    if limit is not None and baseline is None:
        raise ImagegenError(
            "--imagegen-max-cost-increase needs --imagegen-cost-baseline=PATH.json "
            "(a report from an earlier run, e.g. of the main branch)"
        )
    inflight = parse_number(
        config.getini("imagegen_max_inflight"), "ini imagegen_max_inflight", minimum=1
    )
    return RunOptions(
        budget=parse_number(config.getoption("imagegen_budget"), "--imagegen-budget", minimum=0),
        report_path=path("imagegen_report"),
        markdown_path=path("imagegen_markdown"),
        cost_baseline=baseline,
        cost_limit=parse_cost_limit(limit) if limit is not None else None,
        max_inflight=int(inflight) if inflight else None,
        rate_limit=parse_rate(config.getini("imagegen_rate_limit") or None),
    )
