"""Exploration settings of continuous-action policies: action noise, gSDE and the initial log std.

`ActionNoiseSpec` is the exploration noise an off-policy algorithm (SAC, TD3, DDPG) adds to its
actions while it collects experience: Gaussian, or Ornstein-Uhlenbeck (temporally correlated,
which helps on sparse-reward tasks such as MountainCarContinuous). `sigma` is a fraction of the
action range's half-width, i.e. the std of the noise added to the policy's output in [-1, 1]
before it is scaled to the env's bounds, as every backend's library adds it.

The functions below read a spec's exploration settings in one place, for the feature checks
(`polyrl.features`) and the backends' mappings; importing this module imports no backend library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from polyrl._model import SpecModel
from polyrl.errors import UnsupportedSpaceError

if TYPE_CHECKING:
    from polyrl._model import StrictModel
    from polyrl.envs import SpaceKind
    from polyrl.spec import AgentSpec

#: Ornstein-Uhlenbeck defaults (SB3's and Tianshou's): mean reversion rate and time step.
OU_THETA = 0.15
OU_DT = 1e-2


class GaussianNoiseSpec(SpecModel):
    """Independent Gaussian noise on every action: N(0, sigma^2) in the [-1, 1] action range."""

    kind: Literal["gaussian"] = "gaussian"
    sigma: Annotated[float, Field(ge=0)]
    """Std of the noise, as a fraction of the action range's half-width (0: no noise)."""


class OrnsteinUhlenbeckNoiseSpec(SpecModel):
    """Ornstein-Uhlenbeck noise: x += theta * (0 - x) * dt + sigma * sqrt(dt) * N(0, 1) per step.

    Successive actions get correlated noise (it reverts to 0 over about 1 / (theta * dt) steps),
    so the agent pushes in one direction for a while: the exploration sparse rewards need.
    """

    kind: Literal["ornstein_uhlenbeck"]
    sigma: Annotated[float, Field(ge=0)]
    """Scale of the noise, as a fraction of the action range's half-width (0: no noise)."""
    theta: Annotated[float, Field(gt=0)] = OU_THETA
    """Rate at which the noise reverts to 0."""
    dt: Annotated[float, Field(gt=0, le=1)] = OU_DT
    """Time step of the process."""


def _noise_kind(value: object) -> object:
    # A callable discriminator: SpecModel's before-validators on every field rule out pydantic's
    # inferred one, and a tagged union names only the chosen kind's errors.
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


ActionNoiseSpec = Annotated[
    Annotated[GaussianNoiseSpec, Tag("gaussian")]
    | Annotated[OrnsteinUhlenbeckNoiseSpec, Tag("ornstein_uhlenbeck")],
    Discriminator(
        _noise_kind,
        custom_error_type="noise_kind",
        custom_error_message='action noise needs "kind": "gaussian" or "ornstein_uhlenbeck"',
    ),
]
"""{"kind": "gaussian", "sigma": s} or {"kind": "ornstein_uhlenbeck", "sigma": s, "theta": t, "dt": d}."""

NoiseKind = Literal["gaussian", "ornstein_uhlenbeck"]


class GsdeSettings(SpecModel):
    """gSDE and the initial log std: fields of the PPO, A2C and SAC sections.

    gSDE (generalized State-Dependent Exploration, Raffin et al. 2021) draws the exploration
    noise as a function of the state, from a noise matrix re-sampled every `sde_sample_freq`
    steps, so exploration is smooth along a trajectory instead of white noise at every step.
    """

    #: True where the std of the algorithm's Gaussian comes from the network without gSDE (SAC),
    #: so `log_std_init` only means something with gSDE on.
    LOG_STD_NEEDS_SDE: ClassVar[bool] = False

    use_sde: bool | None = None
    """Use gSDE instead of independent Gaussian noise (Box actions; sb3 only)."""
    sde_sample_freq: int | None = None
    """With gSDE: env steps between new noise matrices; -1: only at the start of each rollout."""
    log_std_init: Annotated[float, Field(ge=-20, le=20)] | None = None
    """Initial log std of the Gaussian policy (PPO/A2C; SAC with gSDE): e.g. -2 for a cautious start."""

    @classmethod
    def follows_use_sde(cls, name: str) -> bool:
        """True for a field of this section that only exists with gSDE on (the rule below checks)."""
        return name == "sde_sample_freq" or (name == "log_std_init" and cls.LOG_STD_NEEDS_SDE)

    @model_validator(mode="after")
    def _sde_settings_need_sde(self) -> GsdeSettings:
        if self.sde_sample_freq is not None:
            if self.sde_sample_freq == 0 or self.sde_sample_freq < -1:
                raise ValueError(
                    f"sde_sample_freq must be -1 (a new noise matrix per rollout only) or >= 1 "
                    f"(env steps between new matrices), got {self.sde_sample_freq}"
                )
            if self.use_sde is not True:
                raise ValueError("sde_sample_freq applies to gSDE only: set use_sde=true, or remove it")
        if self.LOG_STD_NEEDS_SDE and self.log_std_init is not None and self.use_sde is not True:
            raise ValueError(
                "log_std_init of SAC sets the initial log std of gSDE's noise (SAC's std otherwise "
                "comes from the network, on every backend): set use_sde=true, or remove log_std_init"
            )
        return self


class ActionNoiseSettings(SpecModel):
    """The `action_noise` field of the SAC, TD3 and DDPG sections (`action_noise_std` is its shorthand)."""

    action_noise: ActionNoiseSpec | None = None
    """Noise added to actions while collecting, e.g. {"kind": "ornstein_uhlenbeck", "sigma": 0.5}."""

    @model_validator(mode="after")
    def _one_noise_setting(self) -> ActionNoiseSettings:
        if self.action_noise is not None and getattr(self, "action_noise_std", None) is not None:
            raise ValueError(
                'action_noise_std is the shorthand of action_noise {"kind": "gaussian", "sigma": std}; '
                "set one of them, not both"
            )
        return self


def action_noise(section: StrictModel | None) -> GaussianNoiseSpec | OrnsteinUhlenbeckNoiseSpec | None:
    """The action noise a section asks for: its `action_noise`, or `action_noise_std` as Gaussian.

    None when the section sets neither (the backend's default applies, e.g. Gaussian 0.1 for TD3).
    """
    if section is None:
        return None
    noise: GaussianNoiseSpec | OrnsteinUhlenbeckNoiseSpec | None = getattr(section, "action_noise", None)
    if noise is not None:
        return noise
    std = getattr(section, "action_noise_std", None)
    return GaussianNoiseSpec(sigma=std) if std is not None else None


def uses_action_noise(spec: AgentSpec, kind: NoiseKind) -> bool:
    """True when the spec asks for noise of `kind` with sigma > 0 (sigma 0 is no noise: any backend)."""
    noise = action_noise(spec.section())
    return noise is not None and noise.kind == kind and noise.sigma > 0


def uses_gsde(spec: AgentSpec) -> bool:
    """True when the spec's section turns gSDE on."""
    return getattr(spec.section(), "use_sde", None) is True


def log_std_init(spec: AgentSpec) -> float | None:
    """The initial log std of the Gaussian policy the spec asks for, if any."""
    value: float | None = getattr(spec.section(), "log_std_init", None)
    return value


def check_action_space(spec: AgentSpec, action_kind: SpaceKind) -> None:
    """UnsupportedSpaceError when exploration settings for continuous actions meet other actions.

    gSDE, an initial log std and action noise all act on a Gaussian over Box actions; on Discrete
    (or other) actions a library would either refuse them deep inside or ignore them silently.
    """
    if action_kind == "box":
        return
    section = spec.section()
    asked = [
        f"{spec.algorithm}.{name}"
        for name in ("use_sde", "sde_sample_freq", "log_std_init", "action_noise", "action_noise_std")
        if getattr(section, name, None) is not None and getattr(section, name) is not False
    ]
    if asked:
        raise UnsupportedSpaceError(
            f"{', '.join(asked)}: these settings apply to continuous (Box) actions only, but the "
            f"env's actions are {action_kind}; remove them, or use an env with Box actions"
        )


__all__ = [
    "OU_DT",
    "OU_THETA",
    "ActionNoiseSettings",
    "ActionNoiseSpec",
    "GaussianNoiseSpec",
    "GsdeSettings",
    "NoiseKind",
    "OrnsteinUhlenbeckNoiseSpec",
    "action_noise",
    "check_action_space",
    "log_std_init",
    "uses_action_noise",
    "uses_gsde",
]
