"""Laying a preset over a spec: the preset fills the fields the user left unset, nothing else.

A field counts as set when the user gave it (pydantic's `model_fields_set`) with a value other
than None; sections and `network` are filled key by key, so `ppo={"n_epochs": 5}` keeps the
preset's other PPO settings. The result is a plain AgentSpec whose `preset` names the preset
used ("none" when none applied): drivers never see presets, and a saved agent records the
settings it really trained with, so loading it does not depend on this version's presets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, JsonValue

from polyrl.errors import ConfigurationError
from polyrl.exploration import GsdeSettings
from polyrl.presets.book import preset_book
from polyrl.presets.model import MatchRule, Preset, PresetChoice
from polyrl.spec import SECTION_NAMES

if TYPE_CHECKING:
    from polyrl.spec import AgentSpec


#: The fields filled key by key (the user's keys kept, the preset's others added). Any other field
#: is one value: a user's schedule, normalisation or wrapper list is taken whole, never mixed with
#: the preset's (a linear schedule does not get the preset's `end_fraction`).
_MERGED = ("network", *SECTION_NAMES)
#: Section fields that are two ways of writing one setting: the preset fills neither side when the
#: user set the other (the spec refuses both at once).
_ALTERNATIVES: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (frozenset({"action_noise"}), frozenset({"action_noise_std"})),
    (
        frozenset({"epsilon"}),
        frozenset({"exploration_fraction", "exploration_initial_eps", "exploration_final_eps"}),
    ),
)


def _is_set(model: BaseModel, name: str) -> bool:
    return name in model.model_fields_set and getattr(model, name) is not None


def _user_chose_otherwise(model: BaseModel, name: str) -> bool:
    """True when the user set an alternative way of writing the setting `name` is part of, or
    the setting it depends on: a user who set use_sde (even to false) has decided gSDE's
    companions too (`GsdeSettings.follows_use_sde`), so the preset does not add them."""
    if isinstance(model, GsdeSettings) and model.follows_use_sde(name) and _is_set(model, "use_sde"):
        return True
    fields = type(model).model_fields
    for one, other in _ALTERNATIVES:
        for side, opposite in ((one, other), (other, one)):
            if name in side and any(n in fields and _is_set(model, n) for n in opposite):
                return True
    return False


def _fill(model: BaseModel, settings: dict[str, JsonValue], prefix: str) -> tuple[dict[str, Any], list[str]]:
    """The field values of `model` after filling its unset fields from `settings`, and what was filled."""
    values: dict[str, Any] = {}
    applied: list[str] = []
    for name, value in settings.items():
        if _user_chose_otherwise(model, name):
            continue
        current = getattr(model, name)
        merged = not prefix and name in _MERGED
        if not _is_set(model, name):
            values[name] = value
            if merged and isinstance(value, dict):
                applied.extend(f"{prefix}{name}.{key}" for key in value)
            else:
                applied.append(f"{prefix}{name}")
        elif merged and isinstance(current, BaseModel) and isinstance(value, dict):
            inner, inner_applied = _fill(current, value, f"{prefix}{name}.")
            if inner_applied:
                values[name] = {**current.model_dump(exclude_unset=True), **inner}
                applied.extend(inner_applied)
    return values, applied


def chosen_preset(
    spec: AgentSpec, observation: str, action: str
) -> tuple[Preset, MatchRule | Literal["name"]] | None:
    """The preset `spec.preset` asks for on an env with these observation/action kinds, if any,
    and why: the rule `PresetBook.match` used, or "name" when the spec names the preset."""
    if spec.preset == "none":
        return None
    book = preset_book()
    if spec.preset == "auto":
        env_id = spec.env if isinstance(spec.env, str) else None
        return book.match(spec.algorithm, env_id, observation, action)
    preset = book.named(spec.preset)
    if preset.algorithm != spec.algorithm:
        raise ConfigurationError(
            f"preset {preset.name!r} is for {preset.algorithm}, but the spec's algorithm is "
            f'{spec.algorithm!r}; use preset="auto" or one of '
            f"{[p.name for p in book.for_algorithm(spec.algorithm)]}"
        )
    return preset, "name"


#: How a preset's setting steps back on a backend that lacks the optional feature it needs:
#: feature -> section fields and what each becomes (a schedule its start value, gSDE/noise off).
_WITHOUT: dict[str, dict[str, str]] = {
    "schedule.clip_range": {"clip_range": "start"},
    "schedule.ent_coef": {"ent_coef": "start"},
    "gsde": {"use_sde": "unset", "sde_sample_freq": "unset"},
    "log_std_init": {"log_std_init": "unset"},
    "action_noise.gaussian": {"action_noise": "unset", "action_noise_std": "unset"},
    "action_noise.ornstein_uhlenbeck": {"action_noise": "unset"},
}


def _fit_features(
    document: dict[str, Any], user: AgentSpec, resolved: AgentSpec, declared: Sequence[str]
) -> list[str]:
    """Step the preset's settings back where the backend lacks a feature they use; say which.

    A feature the user's own settings ask for is left alone: check_features then refuses it, naming
    the backends that have it. One the preset brought in is a preset's choice, not the user's, so
    the preset adapts (a clip-range schedule becomes its start value) instead of failing.
    """
    from polyrl.features import used_features
    from polyrl.schedules import initial_value

    asked = set(used_features(user))
    section = document.get(resolved.algorithm)
    dropped = []
    for feature in used_features(resolved):
        if feature in declared or feature in asked or feature not in _WITHOUT:
            continue
        if not isinstance(section, dict):
            continue
        for field, how in _WITHOUT[feature].items():
            if field in section:
                section[field] = initial_value(getattr(resolved.section(), field)) if how == "start" else None
        dropped.append(feature)
    return dropped


def apply_preset(
    spec: AgentSpec, observation: str, action: str, features: Sequence[str] = ()
) -> tuple[AgentSpec, PresetChoice | None]:
    """The spec with its preset's settings in the fields left unset, and which preset that was.

    `observation` ("box"/"image") and `action` ("discrete"/"box"...) are the env's kinds, for the
    fallback presets of envs no preset names; `features` are those the backend's algorithm
    declares (a preset setting needing another one steps back, see `_fit_features`).
    """
    from polyrl.spec import AgentSpec

    chosen = chosen_preset(spec, observation, action)
    if chosen is None:
        return spec.model_copy(update={"preset": "none"}), None
    preset, matched_by = chosen
    values, applied = _fill(spec, preset.settings_for(spec.backend), "")
    document = {**spec.model_dump(exclude={"env", "preset"}), **values, "preset": preset.name}
    try:
        resolved = AgentSpec.model_validate({**document, "env": spec.env})
        dropped = _fit_features(document, spec, resolved, features)
        if dropped:
            resolved = AgentSpec.model_validate({**document, "env": spec.env})
    except ValueError as exc:
        raise ConfigurationError(
            f"preset {preset.name!r} does not fit this spec: {exc}. Set the fields named there yourself, "
            'or use preset="none"'
        ) from exc
    layer = preset.backends.get(spec.backend)
    choice = PresetChoice(
        name=preset.name,
        source=preset.source,
        matched_by=matched_by,
        applied=sorted(applied),
        backend_layer=layer.why if layer is not None else None,
        budget_steps=preset.budget_steps,
        stepped_back=dropped,
    )
    return resolved, choice


def recorded_preset(spec: AgentSpec) -> PresetChoice | None:
    """The preset a saved (already resolved) spec names, as far as this version's book knows it."""
    if spec.preset in ("none", "auto"):
        return None
    try:
        preset = preset_book().named(spec.preset)
    except ConfigurationError:
        return PresetChoice(name=spec.preset, source="not among this polyrl version's presets", applied=[])
    return PresetChoice(name=preset.name, source=preset.source, applied=[], budget_steps=preset.budget_steps)
