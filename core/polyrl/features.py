"""Optional spec features: settings an algorithm of a backend may or may not honour.

A backend declares the features each algorithm honours in `AlgorithmInfo.features` (names from
`FEATURES`). Before a driver is built, `check_features` refuses a spec that uses a feature the
chosen backend/algorithm does not declare, with an UnsupportedOptionError naming the installed
backend/algorithms that do: a user learns where the setting works instead of having it ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from polyrl.errors import UnsupportedOptionError

if TYPE_CHECKING:
    from polyrl.backend import BackendInfo
    from polyrl.spec import AgentSpec


def _section_value(spec: AgentSpec, field: str) -> object:
    section = spec.section()
    return getattr(section, field, None) if section is not None else None


#: Feature name -> (does the spec use it?, how a user sets it: for the error message).
FEATURES: dict[str, tuple[Callable[[AgentSpec], bool], str]] = {}


def register_feature(name: str, uses: Callable[[AgentSpec], bool], described: str) -> None:
    """Add a feature: `uses(spec)` tells whether a spec asks for it; `described` names the setting."""
    FEATURES[name] = (uses, described)


def used_features(spec: AgentSpec) -> list[str]:
    """The optional features the spec asks for, sorted."""
    return sorted(name for name, (uses, _) in FEATURES.items() if uses(spec))


def declaring(feature: str) -> list[str]:
    """ "backend/algorithm" of every installed algorithm that declares `feature`, sorted."""
    from polyrl.plugins import registry

    return sorted(
        f"{backend}/{algorithm}"
        for backend, info in registry().backends().items()
        for algorithm, algorithm_info in info.algorithms.items()
        if feature in algorithm_info.features
    )


def check_features(info: BackendInfo, spec: AgentSpec) -> None:
    """UnsupportedOptionError unless the backend's algorithm declares every feature the spec uses."""
    declared = info.algorithms[spec.algorithm].features
    for name in used_features(spec):
        if name in declared:
            continue
        raise UnsupportedOptionError(
            f"{info.name}/{spec.algorithm} does not support {FEATURES[name][1]} (feature {name!r}); "
            f"installed backend/algorithms that do: {declaring(name) or 'none'}. Remove the setting, or "
            "choose one of those."
        )


__all__ = ["FEATURES", "check_features", "declaring", "register_feature", "used_features"]


# -- exploration (polyrl.exploration): settings of continuous-action policies --------------------
def _register_exploration_features() -> None:
    from polyrl.exploration import log_std_init, uses_action_noise, uses_gsde

    register_feature("gsde", uses_gsde, "gSDE (use_sde=true, state-dependent exploration)")
    register_feature(
        "log_std_init", lambda spec: log_std_init(spec) is not None, "log_std_init (initial log std)"
    )
    register_feature(
        "action_noise.gaussian",
        lambda spec: uses_action_noise(spec, "gaussian"),
        "Gaussian action noise (action_noise kind 'gaussian' / action_noise_std)",
    )
    register_feature(
        "action_noise.ornstein_uhlenbeck",
        lambda spec: uses_action_noise(spec, "ornstein_uhlenbeck"),
        "Ornstein-Uhlenbeck action noise (action_noise kind 'ornstein_uhlenbeck')",
    )


_register_exploration_features()


# -- schedules (polyrl.schedules): values the core sets before every iteration -------------------
# A learning-rate schedule needs no feature: every driver has set_learning_rate.
def _register_schedule_features() -> None:
    from polyrl.schedules import is_scheduled

    def schedules(name: str) -> Callable[[AgentSpec], bool]:
        def uses(spec: AgentSpec) -> bool:
            return spec.algorithm in ("ppo", "a2c", "dqn") and is_scheduled(_section_value(spec, name))

        return uses

    for name, where in (
        ("clip_range", "ppo.clip_range"),
        ("ent_coef", "ppo.ent_coef / a2c.ent_coef"),
        ("epsilon", "dqn.epsilon"),
    ):
        register_feature(
            f"schedule.{name}",
            schedules(name),
            f"a {name} schedule ({where} holding a non-constant schedule; a number works everywhere)",
        )


_register_schedule_features()


# -- experience (polyrl.experience): transitions in and out of a backend -------------------------
def _register_experience_features() -> None:
    register_feature(
        "experience.add",
        lambda spec: getattr(spec, "prefill", None) is not None,
        "external transitions in the replay buffer (prefill, Agent.add_experience)",
    )
    # Not a spec setting: recording and cooperation ask the driver for it (Agent, polyrl.cooperate).
    register_feature(
        "experience.collect",
        lambda spec: False,
        "reporting the transitions training collects (ExperienceRecorder, polyrl.cooperate)",
    )


_register_experience_features()
