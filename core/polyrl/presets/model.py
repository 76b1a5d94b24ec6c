"""The shape of polyrl's presets: settings per algorithm and environment family, with their source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue, model_validator

from polyrl._model import StrictModel

#: A preset name: what `AgentSpec.preset` holds to ask for one by name.
PRESET_NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
#: How a preset fits an env, most specific first (the order `PresetBook.match` tries): it lists
#: the id, another version of it, a prefix of it, or it is the fallback for the env's kinds.
MatchRule = Literal["env", "version", "prefix", "fallback"]
#: Names `AgentSpec.preset` gives a meaning of its own, so no preset may take them.
RESERVED_NAMES = ("auto", "none")


class PresetMatch(StrictModel):
    """Which environments a preset is for.

    `envs` names Gymnasium ids (a listed id also matches its other versions when no preset lists
    that version: "CartPole-v1" covers "CartPole-v0"); `env_prefixes` names families by the start
    of their ids ("ALE/", "MinAtar/"). A preset with neither is a fallback: it matches any env
    whose observations and actions are of the kinds given (None: any kind).
    """

    envs: list[str] = Field(default_factory=list)
    env_prefixes: list[str] = Field(default_factory=list)
    observation: Literal["box", "image"] | None = None
    """Fallbacks only: "box" (vectors, after polyrl's encoding) or "image"."""
    action: Literal["discrete", "box"] | None = None
    """Fallbacks only: "discrete" or "box" (continuous) actions."""

    @property
    def is_fallback(self) -> bool:
        """True for a preset matched by spaces, not by env id."""
        return not self.envs and not self.env_prefixes

    @model_validator(mode="after")
    def _kinds_for_fallbacks_only(self) -> PresetMatch:
        if not self.is_fallback and (self.observation is not None or self.action is not None):
            raise ValueError(
                "observation/action narrow fallbacks only; a preset naming envs matches them whatever "
                "their spaces"
            )
        return self


class BackendLayer(StrictModel):
    """Settings one backend needs on top of the preset's, and why its library needs them."""

    settings: dict[str, JsonValue]
    why: str = Field(min_length=10)


class Preset(StrictModel):
    """Settings of one algorithm for a family of environments, in polyrl's common vocabulary.

    `settings` are AgentSpec fields (sections nested: {"ppo": {"n_epochs": 20}}); they fill only
    the fields a user leaves unset. `source` cites where the values come from (an RL Zoo3 file and
    entry, a polyrl measurement); `budget_steps` is the env steps that source trains for.
    """

    name: str = Field(pattern=PRESET_NAME)
    algorithm: str
    match: PresetMatch
    settings: dict[str, JsonValue]
    source: str = Field(min_length=10)
    budget_steps: int | None = Field(default=None, gt=0)
    notes: str = ""
    backends: dict[str, BackendLayer] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _name_not_reserved(self) -> Preset:
        if self.name in RESERVED_NAMES:
            raise ValueError(f"a preset may not be called {self.name!r}: AgentSpec.preset gives it a meaning")
        for key in ("backend", "algorithm", "env", "preset", "seed", "backend_options"):
            if key in self.settings:
                raise ValueError(f"preset {self.name!r}: settings may not set {key!r} (the user's choice)")
        return self

    def settings_for(self, backend: str) -> dict[str, JsonValue]:
        """The preset's settings with `backend`'s layer laid over them (sections merged key by key)."""
        layer = self.backends.get(backend)
        return merge_settings(self.settings, layer.settings) if layer is not None else dict(self.settings)


def merge_settings(base: dict[str, JsonValue], over: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """`over` laid on `base`; nested dicts (spec sections, network) merge key by key."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            merged[key] = merge_settings(below, value)
        else:
            merged[key] = value
    return merged


class PresetChoice(StrictModel):
    """The preset an agent got: its name and source, and the spec fields it filled."""

    name: str
    source: str
    matched_by: MatchRule | Literal["name"] | None = Field(
        default=None,
        description="Why this preset: it lists the env id, another version of it, a prefix of it, it is "
        "the fallback for the env's observation/action kinds, or the spec named it.",
    )
    applied: list[str] = Field(description="Dotted names of the spec fields the preset set, sorted.")
    backend_layer: str | None = Field(
        default=None, description="Why the backend's own layer applied, if one did."
    )
    budget_steps: int | None = None
    stepped_back: list[str] = Field(
        default_factory=list,
        description="Features the preset uses that this backend lacks, so their settings stepped back "
        "(a schedule held at its start value, gSDE or action noise off).",
    )
