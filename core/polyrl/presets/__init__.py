"""Presets: settings per algorithm and environment family that fill the fields a user leaves unset.

`AgentSpec.preset` is "auto" by default: the preset for the spec's algorithm and env (by id,
family or, for envs no preset names, the observation and action kinds) fills every field the
user did not set, on every backend. "none" keeps the library's own defaults; a name asks for one
preset. The presets live in `presets.toml` beside this module, each citing its source.
"""

from polyrl.presets.apply import apply_preset, chosen_preset, recorded_preset
from polyrl.presets.book import PresetBook, parse_book, preset_book
from polyrl.presets.model import BackendLayer, MatchRule, Preset, PresetChoice, PresetMatch

__all__ = [
    "BackendLayer",
    "MatchRule",
    "Preset",
    "PresetBook",
    "PresetChoice",
    "PresetMatch",
    "apply_preset",
    "chosen_preset",
    "parse_book",
    "preset_book",
    "recorded_preset",
]
