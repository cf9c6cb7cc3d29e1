"""Use-case profiles (``<suites root>/profiles.yaml``): approval limits by use case.

A profile caps what a case may ask for: ``max_size`` (pixel area, WxH),
``max_n``, allowed ``quality`` values, allowed ``models`` and ``max_cost``
(the case's list cost, and its own ``max_cost`` ceiling if it sets one).
Suites and cases opt in with ``use_case: <profile>``; the check runs at
collection, so a violation is a collection error naming profile and limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.errors import SuiteError
from ..api.shape import AUTO, parse_size
from ..money.prices import PriceTable, format_usd
from .spec import CaseSpec
from .yamlfile import LineDict, did_you_mean, parse_yaml

PROFILES_FILE = "profiles.yaml"
PROFILE_KEYS = ("description", "max_size", "max_n", "quality", "models", "max_cost")


@dataclass(frozen=True)
class Profile:
    name: str
    max_size: str | None = None
    max_n: int | None = None
    quality: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    max_cost: float | None = None

    def violation(self, spec: CaseSpec, list_cost: float) -> str | None:
        """Why ``spec`` breaks this profile (first limit hit), or ``None``."""
        where = f"profile {self.name!r}"
        if self.models is not None and spec.model not in self.models:
            return f"{where} allows models {', '.join(self.models)}; the case uses {spec.model}"
        if self.max_size is not None:
            limit = parse_size(self.max_size)
            size = parse_size(spec.size) if spec.size != AUTO else None
            assert limit is not None
            if size is None or size[0] * size[1] > limit[0] * limit[1]:
                return (
                    f"{where} allows sizes up to {self.max_size} (pixel area); "
                    f"the case asks for {spec.size}"
                )
        if self.max_n is not None and spec.n > self.max_n:
            return f"{where} allows n up to {self.max_n}; the case asks for n={spec.n}"
        if self.quality is not None and (spec.quality or AUTO) not in self.quality:
            return (
                f"{where} allows quality {', '.join(self.quality)}; "
                f"the case asks for {spec.quality or AUTO}"
            )
        if self.max_cost is not None:
            if list_cost > self.max_cost:
                return (
                    f"{where} allows a list cost up to {format_usd(self.max_cost)}; "
                    f"the case costs {format_usd(list_cost)}"
                )
            if spec.max_cost is not None and spec.max_cost > self.max_cost:
                return (
                    f"{where} allows max_cost up to {format_usd(self.max_cost)}; "
                    f"the case sets max_cost {format_usd(spec.max_cost)}"
                )
        return None


@dataclass
class Profiles:
    path: Path
    profiles: dict[str, Profile]

    def checker(self, prices: PriceTable) -> Callable[[CaseSpec], str | None]:
        def check(spec: CaseSpec) -> str | None:
            if spec.use_case is None:
                return None
            profile = self.profiles.get(spec.use_case)
            if profile is None:
                if not self.profiles:
                    return (
                        f"unknown profile {spec.use_case!r}: there is no {self.path} "
                        "defining use-case profiles; create it or remove use_case"
                    )
                return (
                    f"unknown profile {spec.use_case!r}{did_you_mean(spec.use_case, self.profiles)}"
                    f"; defined in {self.path.name}: {', '.join(sorted(self.profiles))}"
                )
            cost = prices.list_cost(spec.model, spec.size, spec.quality, spec.n, spec.prompt)
            return profile.violation(spec, cost.total)

        return check


def load_profiles(path: Path, display: str | None = None) -> Profiles:
    """Read and validate ``profiles.yaml``; a missing file means no profiles."""
    display = display or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Profiles(path, {})
    except OSError as exc:
        raise SuiteError([f"{display}: cannot read the file: {exc.strerror}"]) from None
    import yaml

    try:
        raw, _ = parse_yaml(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise SuiteError([f"{display}{at}: YAML syntax error in the profiles file"]) from None
    if raw is None:
        return Profiles(path, {})
    if not isinstance(raw, LineDict):
        raise SuiteError([f"{display}:1: must map profile names to their limits"])
    problems: list[str] = []
    profiles: dict[str, Profile] = {}
    for name, body in raw.items():
        line = raw.key_lines.get(name, 1)

        def bad(message: str, *, _name: Any = name, _line: int = line) -> None:
            problems.append(f"{display}:{_line}: profile {_name!r}: {message}")

        if not isinstance(body, LineDict):
            bad("must be a mapping of limits, e.g. {max_n: 1, quality: [low]}")
            continue
        for key in body:
            if key not in PROFILE_KEYS:
                bad(
                    f"unknown key {key!r}{did_you_mean(str(key), PROFILE_KEYS)}; "
                    f"allowed: {', '.join(PROFILE_KEYS)}"
                )
        max_size = body.get("max_size")
        if max_size is not None and (not isinstance(max_size, str) or not parse_size(max_size)):
            bad(f"max_size: {max_size!r} is not a WxH size like 1024x1024")
            max_size = None
        max_n = body.get("max_n")
        if max_n is not None and (
            isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1
        ):
            bad(f"max_n: {max_n!r} must be a whole number from 1")
            max_n = None
        max_cost = body.get("max_cost")
        if max_cost is not None and (
            isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or max_cost <= 0
        ):
            bad(f"max_cost: {max_cost!r} must be a number of USD greater than 0")
            max_cost = None
        lists: dict[str, tuple[str, ...] | None] = {}
        for key in ("quality", "models"):
            value = body.get(key)
            if isinstance(value, str):
                value = [value]
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                bad(f"{key}: must be a list of names")
                value = None
            lists[key] = tuple(value) if value is not None else None
        profiles[str(name)] = Profile(
            name=str(name),
            max_size=max_size,
            max_n=max_n,
            quality=lists["quality"],
            models=lists["models"],
            max_cost=float(max_cost) if max_cost is not None else None,
        )
    if problems:
        raise SuiteError(problems)
    return Profiles(path, profiles)
