"""Session settings resolved from options, environment and ini (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, MissingAPIKeyError
from .providers import ProviderSettings
from .redact import MIN_SECRET_LENGTH

DEFAULT_BASE_URL = "https://api.wisgate.ai/v1"
BASE_URL_ENV = "IMAGEGEN_BASE_URL"
KEY_ENV_VARS = ("IMAGEGEN_API_KEY", "WISGATE_API_KEY", "OPENAI_API_KEY")
# --- image store (issue 22): the store's credentials are masked like API keys
STORE_SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
#: every variable whose value must never reach an output
SECRET_ENV_VARS = (*KEY_ENV_VARS, *STORE_SECRET_ENV_VARS)
# --- end image store
RECORD_MODES = ("none", "once", "new_episodes", "all")
DRIFT_MODES = ("fail", "warn", "off")


@dataclass(frozen=True)
class Settings:
    record_mode: str = "none"
    base_url: str = DEFAULT_BASE_URL
    base_url_source: str = "default"
    timeout: float = 180.0
    max_retries: int = 3
    backoff: float = 1.0
    default_max_cost: float | None = None
    suite_dirs: tuple[Path, ...] = field(default_factory=tuple)
    project_root: Path | None = None  # the ini file's directory
    drift_mode: str = "fail"
    drift_thresholds: Mapping[str, int] = field(
        default_factory=lambda: {"phash": 10, "colorhash": 4}
    )
    update_baselines: str | None = None  # "replace" | "add" with --imagegen-update-baselines
    html_dir: Path | None = None
    fake_server: bool = False  # --imagegen-fake-server: traffic is never real spend
    concurrency: int = 1  # --imagegen-concurrency: requests recorded at once (prefetch)
    judge_model: str = "gpt-4.1-mini"  # ini imagegen_judge_model
    judge_min_score: float = 0.7  # ini imagegen_judge_min_score
    max_response_mb: float = 64.0  # ini imagegen_max_response_mb (decompressed answers)
    #: provider shapes (SPEC §19): ini imagegen_provider, imagegen_azure_*, imagegen_deployments,
    #: imagegen_gemini_base_url
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    # --- image store (issue 22)
    image_store: str | None = None  # ini imagegen_image_store: an fsspec URL
    image_cache: Path | None = None  # ini imagegen_image_cache (None: the default cache)
    # --- end image store


def resolve_base_url(
    option: str | None, environ: Mapping[str, str], ini: str | None
) -> tuple[str, str]:
    """Base URL and where it came from: option > env > ini > default."""
    for value, source in (
        (option, "--imagegen-base-url"),
        (environ.get(BASE_URL_ENV), BASE_URL_ENV),
        (ini, "ini imagegen_base_url"),
    ):
        if value:
            if not value.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{source}: {value!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL}"
                )
            return value.rstrip("/"), source
    return DEFAULT_BASE_URL, "default"


def find_api_key(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(variable name, key) from the first set variable; raise if none is set."""
    env = os.environ if environ is None else environ
    for name in KEY_ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return name, value
    raise MissingAPIKeyError(
        "no API key: this test must send a live request but none of "
        f"{', '.join(KEY_ENV_VARS)} is set (looked at in that order); nothing was sent. "
        "Export one of them, or replay from cassettes with --imagegen-record-mode=none."
    )


def check_key_lengths(environ: Mapping[str, str]) -> None:
    """A ``ConfigError`` when a key variable holds fewer than :data:`MIN_SECRET_LENGTH`
    characters (blank counts as unset): so short a value could not be told from ordinary
    text, so it could not be kept out of the output. Names the variable and the length,
    never the value."""
    for name in KEY_ENV_VARS:
        value = environ.get(name, "").strip()
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"${name} is set to {len(value)} character{'s' if len(value) > 1 else ''}, "
                f"too short for an API key (at least {MIN_SECRET_LENGTH}; such a key could "
                "not be masked in the output): set it to the real key, or unset it to "
                "replay from cassettes"
            )


def parse_number(
    text: str | None, what: str, *, minimum: float | None = None, positive: bool = False
) -> float | None:
    """A float from an ini/option string; ``ConfigError`` naming ``what`` if it is not one."""
    if text is None or str(text).strip() == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{what}: {text!r} is not a finite number")
    if positive and value <= 0:
        raise ConfigError(f"{what}: must be greater than 0, got {text}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{what}: must be at least {minimum:g}, got {text}")
    return value
