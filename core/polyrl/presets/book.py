"""The preset book: polyrl's presets read from the data file beside this module, and lookup in it.

The data file (`presets.toml`) is data, not code: reading it runs nothing, and every entry is
validated (names unique, one preset per algorithm and env id, each preset's settings a valid
AgentSpec part: tests/test_presets.py checks them all against every backend).
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

from pydantic import ValidationError

from polyrl._model import StrictModel
from polyrl.errors import ConfigurationError
from polyrl.presets.model import MatchRule, Preset

DATA_FILE = "presets.toml"


class PresetBook(StrictModel):
    """Every preset polyrl ships, in the data file's order."""

    presets: list[Preset]

    def named(self, name: str) -> Preset:
        """The preset called `name`; ConfigurationError lists the names there are."""
        for preset in self.presets:
            if preset.name == name:
                return preset
        raise ConfigurationError(
            f'no preset called {name!r}; use "auto", "none" or one of {[p.name for p in self.presets]} '
            "(`polyrl presets` lists them with the envs they are for)"
        )

    def for_algorithm(self, algorithm: str) -> list[Preset]:
        """The presets of one algorithm."""
        return [p for p in self.presets if p.algorithm == algorithm]

    def match(
        self, algorithm: str, env_id: str | None, observation: str, action: str
    ) -> tuple[Preset, MatchRule] | None:
        """The preset for an algorithm on an env, most specific first, and the rule that matched.

        Order: a preset listing the id exactly ("env"); one listing another version of it
        ("version": "CartPole-v0" for "CartPole-v1"); one whose prefix starts the id ("prefix"); a
        fallback for the observation and action kinds ("box"/"image", "discrete"/"box"), the one
        naming more kinds first ("fallback"). None when none fits.
        """
        presets = self.for_algorithm(algorithm)
        if env_id is not None:
            unversioned = _unversioned(env_id)
            rules: tuple[MatchRule, ...] = ("env", "version", "prefix")
            for rule in rules:
                found = [p for p in presets if _matches(p, env_id, unversioned, rule)]
                if found:
                    return found[0], rule
        fallbacks = [
            p
            for p in presets
            if p.match.is_fallback
            and p.match.observation in (None, observation)
            and p.match.action in (None, action)
        ]
        fallbacks.sort(key=lambda p: (p.match.observation is None) + (p.match.action is None))
        return (fallbacks[0], "fallback") if fallbacks else None

    def select(self, algorithm: str, env_id: str | None, observation: str, action: str) -> Preset | None:
        """The preset `match` finds, without the rule."""
        found = self.match(algorithm, env_id, observation, action)
        return None if found is None else found[0]


def _matches(preset: Preset, env_id: str, unversioned: str, rule: MatchRule) -> bool:
    if rule == "env":
        return env_id in preset.match.envs
    if rule == "version":
        return unversioned in {_unversioned(e) for e in preset.match.envs}
    return any(env_id.startswith(prefix) for prefix in preset.match.env_prefixes)


def _unversioned(env_id: str) -> str:
    return re.sub(r"-v\d+$", "", env_id)


def _check_unique(presets: list[Preset]) -> None:
    names: set[str] = set()
    claimed: dict[tuple[str, str], str] = {}
    for preset in presets:
        if preset.name in names:
            raise ValueError(f"two presets are called {preset.name!r}")
        names.add(preset.name)
        keys = [f"env {e}" for e in preset.match.envs] + [f"prefix {p}" for p in preset.match.env_prefixes]
        if preset.match.is_fallback:
            keys.append(f"fallback {preset.match.observation}/{preset.match.action}")
        for key in keys:
            owner = claimed.setdefault((preset.algorithm, key), preset.name)
            if owner != preset.name:
                raise ValueError(f"presets {owner!r} and {preset.name!r} both claim {preset.algorithm} {key}")


def parse_book(text: str, origin: str = DATA_FILE) -> PresetBook:
    """A PresetBook from the TOML text of a presets file (`[[preset]]` tables)."""
    try:
        document = tomllib.loads(text)
        book = PresetBook.model_validate({"presets": document.get("preset", [])})
        _check_unique(book.presets)
    except (tomllib.TOMLDecodeError, ValidationError, ValueError) as exc:
        raise ConfigurationError(f"the presets file {origin} is invalid: {exc}") from exc
    return book


@cache
def preset_book() -> PresetBook:
    """polyrl's presets (read once per process)."""
    text = resources.files("polyrl.presets").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse_book(text)
