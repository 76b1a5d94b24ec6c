"""Environment construction from a spec, and the space vocabulary backends declare support in."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Literal

from polyrl.errors import EnvironmentCreationError, RenderError

if TYPE_CHECKING:
    from collections.abc import Callable

    import gymnasium as gym

    from polyrl.errors import EnvStepError
    from polyrl.observations.normalize import Normalizer
    from polyrl.observations.spec import NormalizeSpec, WrapperSpec
    from polyrl.spec import AgentSpec, EnvFactorySpec

SpaceKind = Literal["discrete", "box", "multi_discrete", "multi_binary", "dict", "tuple", "image", "other"]
"""Space kinds; "image" is a rank-3 Box with finite bounds (see polyrl.observations.images), which a
backend declares in `observation_spaces` when it gives images a CNN."""


def space_kind(space: Any) -> SpaceKind:
    """The kind of a Gymnasium space, in the words BackendInfo uses."""
    from gymnasium import spaces

    kinds: list[tuple[type, SpaceKind]] = [
        (spaces.Discrete, "discrete"),
        (spaces.Box, "box"),
        (spaces.MultiDiscrete, "multi_discrete"),
        (spaces.MultiBinary, "multi_binary"),
        (spaces.Dict, "dict"),
        (spaces.Tuple, "tuple"),
    ]
    for cls, kind in kinds:
        if isinstance(space, cls):
            return kind
    return "other"


class EnvSource:
    """Builds fresh environments of a spec; what the core hands to a backend driver.

    Picklable when the env is a Gymnasium id or an importable factory, so drivers may build
    envs in subprocesses. `observation_space` and `action_space` are probed once. Every env
    `make` returns has the spec's observation wrappers applied, then polyrl's encoding (a
    non-Box observation becomes a float vector: `polyrl.observations.encoding`), so a backend
    only ever sees Box observations; `raw_observation_space` is the space before the encoding.
    Training envs (the default) also get the spec's normalisation. Every env is wrapped in
    `polyrl.env_guard.EnvGuard` (unless `guard=False`, which is for measuring the libraries
    alone): an exception of its reset()/step() becomes `EnvStepError`, and with `check_finite`
    a NaN or infinite reward or float observation `NonFiniteDataError`.
    """

    def __init__(
        self,
        env: str | EnvFactorySpec,
        env_kwargs: dict[str, Any] | None = None,
        *,
        check_finite: bool = True,
        guard: bool = True,
        wrappers: list[WrapperSpec] | None = None,
        normalize: NormalizeSpec | None = None,
        gamma: float = 0.99,
    ) -> None:
        self.env = env
        self.env_kwargs = dict(env_kwargs or {})
        self.check_finite = check_finite
        self.guard = guard
        self.wrappers = list(wrappers or [])
        self.raw_observation_space: Any = None
        self.normalizer: Normalizer | None = None
        probe = self._build(None)
        try:
            if normalize is not None:
                from polyrl.observations.normalize import Normalizer

                self.normalizer = Normalizer(normalize, probe.observation_space, gamma, self.name)
            self.observation_space = probe.observation_space
            self.action_space = probe.action_space
            self.max_episode_steps: int | None = (
                probe.spec.max_episode_steps if probe.spec is not None else None
            )
        finally:
            probe.close()

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, guard: bool = True) -> EnvSource:
        """The env source of an AgentSpec (its `check_finite` flag, wrappers and normalisation included)."""
        return cls(
            spec.env,
            spec.env_kwargs,
            check_finite=spec.check_finite,
            guard=guard,
            wrappers=spec.wrappers,
            normalize=spec.normalize,
            gamma=0.99 if spec.gamma is None else spec.gamma,
        )

    @property
    def gym_id(self) -> str | None:
        """The registered Gymnasium id, or None for a factory."""
        return self.env if isinstance(self.env, str) else None

    @property
    def name(self) -> str:
        """A short human name: the id, or the factory's import path."""
        return self.env if isinstance(self.env, str) else self.env.factory

    def make(
        self,
        render_mode: str | None = None,
        *,
        on_error: Callable[[EnvStepError], None] | None = None,
        deliver_errors: bool = False,
        training: bool = True,
    ) -> gym.Env[Any, Any]:
        """A new environment instance, guarded (render_mode "human" needs a display: RenderError without one).

        `on_error` and `deliver_errors` go to the guard (see EnvGuard): for drivers whose envs run
        in worker processes that end on an exception. `training=False` (evaluate, play, movies)
        leaves out the normalisation: `Agent.act` normalises, and rewards stay raw.
        """
        env = self._build(render_mode)
        if training and self.normalizer is not None:
            from polyrl.observations.normalize import NormalizeWrapper

            env = NormalizeWrapper(env, self.normalizer)
        if not self.guard:
            return env
        from polyrl.env_guard import EnvGuard

        return EnvGuard(
            env, self.name, check_finite=self.check_finite, on_error=on_error, deliver_errors=deliver_errors
        )

    def _build(self, render_mode: str | None) -> gym.Env[Any, Any]:
        import gymnasium as gym

        if render_mode == "human" and not has_display():
            raise RenderError(
                f"render_mode='human' opens a window, but this machine has no display (DISPLAY and "
                f"WAYLAND_DISPLAY are unset), so {self.name!r} would show nothing. Record a movie "
                "instead: `polyrl play PATH --record out.gif`, or polyrl.callbacks.MovieRecorder in Python"
            )
        from polyrl.observations.wrappers import make_kwargs_for

        kwargs = make_kwargs_for(self.wrappers, self.gym_id, dict(self.env_kwargs))
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        try:
            if isinstance(self.env, str):
                register_namespace(self.env)
                env = gym.make(self.env, **kwargs)
            else:
                kwargs = {**self.env.kwargs, **kwargs}
                env = self.env.resolve()(**kwargs)
        except EnvironmentCreationError:
            raise
        except gym.error.Error as exc:
            raise EnvironmentCreationError(
                f"cannot make env {self.name!r}: {exc}. Check the id (gymnasium.pprint_registry() "
                "lists the registered ones) and that the package registering it is imported."
            ) from exc
        except Exception as exc:
            hint = headless_render_hint(str(exc)) if render_mode else ""
            raise EnvironmentCreationError(
                f"the env {self.name!r} failed to build with kwargs {kwargs}: {type(exc).__name__}: {exc}"
                f"{hint}"
            ) from exc
        if not isinstance(env, gym.Env):
            raise EnvironmentCreationError(
                f"env factory {self.name!r} returned {type(env).__name__}, not a gymnasium.Env"
            )
        return self._observe(env)

    def _observe(self, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        """The spec's wrappers, then the encoding every backend relies on (a Box, or refused).

        A Dict of one key becomes that key's space (so `filter_keys: ["image"]` gives an image).
        """
        from polyrl.observations.encoding import (
            EncodeObservation,
            SingleKey,
            check_encodable,
            is_single_key,
            needs_encoding,
        )
        from polyrl.observations.wrappers import apply_wrappers

        try:
            env = apply_wrappers(env, self.wrappers)
            if is_single_key(env.observation_space):
                env = SingleKey(env)
            self.raw_observation_space = env.observation_space
            check_encodable(env.observation_space, self.name)
        except BaseException:
            env.close()
            raise
        return EncodeObservation(env) if needs_encoding(env.observation_space) else env

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __call__(self) -> gym.Env[Any, Any]:
        return self.make()


#: Gymnasium namespaces whose envs register only when their package is imported: (module, pip name).
_NAMESPACE_PACKAGES = {
    "ALE": ("ale_py", "ale-py"),
    "MinAtar": ("minatar.gym", "minatar"),
    "MiniGrid": ("minigrid", "minigrid"),
}


def register_namespace(env_id: str) -> None:
    """Import the package that registers an `ALE/...` or `MinAtar/...` id (Gymnasium does not)."""
    import gymnasium as gym

    namespace = env_id.split("/", 1)[0] if "/" in env_id and ":" not in env_id else None
    if env_id.startswith("MiniGrid-"):
        namespace = "MiniGrid"  # MiniGrid's ids have no namespace, only a prefix
    if namespace not in _NAMESPACE_PACKAGES:
        return
    module_name, package = _NAMESPACE_PACKAGES[namespace]
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvironmentCreationError(
            f"{env_id!r} is registered by the {package!r} package, which is not installed; "
            f"pip install {package}"
            + {"ALE": " (or 'polyrl[atari]')", "MinAtar": " (or 'polyrl[minatar]')"}.get(namespace, "")
        ) from exc
    if namespace == "ALE":
        gym.register_envs(module)
    elif namespace == "MinAtar" and not any(name.startswith("MinAtar/") for name in gym.registry):
        module.register_envs()  # minigrid registers on import


def has_display() -> bool:
    """Whether a window can be opened: always off Linux, else only with an X or Wayland display."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


_GL_WORDS = ("opengl", "glfw", "egl", "osmesa", "gladloadgl", "display", "mujoco", "glx")


def headless_render_hint(message: str) -> str:
    """A hint to append to a rendering error that looks like a missing OpenGL display (MuJoCo).

    MuJoCo renders through GLFW by default, which needs a display; on a headless machine
    MUJOCO_GL=egl (with a GPU) or MUJOCO_GL=osmesa (CPU only) renders offscreen instead.
    """
    if has_display() or not any(word in message.lower() for word in _GL_WORDS):
        return ""
    return (
        ". This machine has no display: for MuJoCo envs set MUJOCO_GL=egl (GPU) or MUJOCO_GL=osmesa "
        "(CPU, needs the osmesa library) and PYOPENGL_PLATFORM to the same value before starting Python"
    )


def is_single_observation(observation: Any, space: Any) -> bool:
    """Whether `observation` is one observation of `space` rather than a batch of them."""
    import numpy as np
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return is_single_observation(observation[key], space.spaces[key])
    if isinstance(space, spaces.Discrete):
        return np.ndim(observation) == 0
    shape = space.shape or ()
    return bool(np.shape(observation) == tuple(shape))


def batch_observations(observations: list[Any], space: Any) -> Any:
    """Stack single observations into one batch (dicts of arrays for Dict spaces)."""
    import numpy as np
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {
            key: batch_observations([o[key] for o in observations], sub) for key, sub in space.spaces.items()
        }
    return np.stack([np.asarray(o, dtype=space.dtype) for o in observations])


def batch_size_of(observations: Any, space: Any) -> int:
    """How many observations a batch holds."""
    import numpy as np
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return batch_size_of(observations[key], space.spaces[key])
    return int(np.shape(observations)[0])
