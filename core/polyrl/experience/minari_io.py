"""TransitionBatch <-> Minari dataset (the Farama Foundation's offline-RL format), through Minari's API.

A Minari episode is T+1 observations (the reset one, then one per step) and T actions,
rewards, terminations and truncations. Export rebuilds that from a batch's rows, episode by
episode (`minari.create_dataset_from_buffers` with one `EpisodeBuffer` each); the rows of an
episode must be consecutive steps (each row's next observation is the next row's observation),
as recorded ones are. An episode cut off by the end of a recording (its last row neither
terminated nor truncated) is stored as truncated, so Minari's readers see every episode end.
log_probs and values go into the episode's infos (T+1 entries, the last NaN), polyrl's episode
and env ids into the dataset metadata under "polyrl", so a polyrl dataset reads back exactly.

Datasets are written with the HDF5 backend (Minari's default) and without JPEG encoding, so
image observations stay bit-exact. Minari is optional: `require_minari` raises
ExtraNotInstalledError naming `polyrl[experience]`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from polyrl.errors import ExperienceError, ExtraNotInstalledError
from polyrl.experience.batch import TransitionBatch, TransitionSchema

INSTALL = "pip install 'polyrl[experience]'"
#: The dataset-metadata key of what Minari has no field for (episode and env ids, infos).
POLYRL_KEY = "polyrl"
FORMAT = "polyrl-experience"
_OPTIONAL = ("log_probs", "values")


def require_minari() -> ModuleType:
    """The minari module; ExtraNotInstalledError saying how to install it when it is missing."""
    try:
        import minari
    except ImportError as exc:
        raise ExtraNotInstalledError(
            f"Minari datasets need the minari package, which is not installed: {INSTALL} "
            "(or write a .npz file, which needs nothing)"
        ) from exc
    module: ModuleType = minari
    return module


def default_root() -> Path:
    """Where Minari keeps datasets by id: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    configured = os.environ.get("MINARI_DATASETS_PATH")
    return Path(configured) if configured else Path.home() / ".minari" / "datasets"


def dataset_id_for(directory: Path) -> str:
    """The Minari dataset id of a dataset written to `directory`: its name, with -v0 unless versioned.

    Name the directory like a Minari id (`cartpole-ppo-v0`) and `minari.load_dataset` finds it
    with MINARI_DATASETS_PATH set to the directory's parent.
    """
    name = re.sub(r"[^-\w]", "-", directory.name) or "polyrl"
    return name if re.search(r"-v\d+$", name) else f"{name}-v0"


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari's datasets root (an env var it reads on every call) set to `root` for the block.

    Process-wide while the block runs: Minari has no other way to be told where to write.
    """
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def write_minari(
    batch: TransitionBatch,
    target: Path,
    schema: TransitionSchema,
    *,
    env_id: str | None = None,
    observation_space: Any = None,
    action_space: Any = None,
) -> Path:
    """Write `batch` as a Minari dataset in the directory `target`; return it.

    Built in a hidden directory beside `target`, then renamed into place (replacing a dataset
    there: the caller checked that it may). `env_id` becomes the dataset's env spec when it is
    a registered Gymnasium id. The spaces default to ones derived from the arrays.
    """
    minari = require_minari()
    from minari.data_collector import EpisodeBuffer

    buffers, episode_ids, env_ids, cut = [], [], [], []
    for episode in batch.episodes():
        fields = _episode_fields(episode)
        cut_off = not (fields["terminations"][-1] or fields["truncations"][-1])
        if cut_off:
            fields["truncations"][-1] = True
            cut.append(int(episode.episode_ids[0]))
        buffers.append(EpisodeBuffer(**fields))
        episode_ids.append(int(episode.episode_ids[0]))
        env_ids.append(int(episode.env_ids[0]))
    if observation_space is None or action_space is None:
        observation_space, action_space = _spaces_of(batch, schema)
    dataset_id = dataset_id_for(target)
    about = ", ".join(f"{key}={value}" for key, value in batch.infos.items())
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            # Minari warns for every metadata field left empty (author, code link, eval env...).
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=_env_spec(env_id),
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=batch.infos.get("algorithm"),
                description=f"transitions written by polyrl ({about})",
                data_format="hdf5",
                jpeg_encoding=False,
            )
            dataset.storage.update_metadata(
                {
                    POLYRL_KEY: {
                        "format": FORMAT,
                        "version": 1,
                        "episode_ids": episode_ids,
                        "env_ids": env_ids,
                        "cut_off": cut,
                        "optional": [name for name in _OPTIONAL if getattr(batch, name) is not None],
                        "action_kind": schema.action_kind,
                        "infos": dict(batch.infos),
                    }
                }
            )
        _move_into_place(staging / dataset_id, target)
    except ImportError as exc:  # h5py, which minari imports only when it writes HDF5
        raise ExtraNotInstalledError(f"writing a Minari dataset needs {exc.name or exc}: {INSTALL}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _episode_fields(episode: TransitionBatch) -> dict[str, Any]:
    """One episode's rows as the keyword arguments of a Minari EpisodeBuffer."""
    name = f"episode {int(episode.episode_ids[0])}"
    if len(set(episode.env_ids.tolist())) > 1:
        slots = sorted(set(episode.env_ids.tolist()))
        raise ExperienceError(f"{name} has rows from several env slots {slots}: give each its own episode id")
    observations, following = episode.observations, episode.next_observations
    equal_nan = np.issubdtype(observations.dtype, np.floating)
    if not np.array_equal(following[:-1], observations[1:], equal_nan=equal_nan):
        raise ExperienceError(
            f"{name} is not a sequence of consecutive steps (a row's next_observations differ from the "
            "next row's observations), which a Minari episode must be; write rows sampled from a "
            "buffer to a .npz file instead"
        )
    ends = episode.terminated | episode.truncated
    if ends[:-1].any():
        raise ExperienceError(
            f"{name} ends (terminated or truncated) before its last row; give each episode its own episode id"
        )
    infos = {}
    for field in _OPTIONAL:
        values = getattr(episode, field)
        if values is not None:
            infos[field] = np.append(values, np.float32(np.nan))  # T+1 entries, as Minari's infos
    return {
        "observations": np.concatenate([observations, following[-1:]]),
        "actions": episode.actions,
        "rewards": episode.rewards,
        "terminations": episode.terminated.copy(),
        "truncations": episode.truncated.copy(),
        "infos": infos or None,
    }


def _spaces_of(batch: TransitionBatch, schema: TransitionSchema) -> tuple[Any, Any]:
    """Spaces that hold the batch's arrays, for a dataset written without the agent's spaces."""
    from gymnasium import spaces

    dtype: Any = np.dtype(schema.observation_dtype)
    integer = np.issubdtype(dtype, np.integer)
    low = float(np.iinfo(dtype).min) if integer else -np.inf
    high = float(np.iinfo(dtype).max) if integer else np.inf
    observation_space = spaces.Box(low, high, tuple(schema.observation_shape), dtype)
    actions = batch.actions
    if schema.action_kind == "discrete":
        return observation_space, spaces.Discrete(int(actions.max(initial=0)) + 1)
    if schema.action_kind == "multi_discrete":
        highest = actions.max(axis=0) if len(actions) else np.zeros(schema.action_shape, np.int64)
        return observation_space, spaces.MultiDiscrete(highest + 1)
    if schema.action_kind == "multi_binary":
        return observation_space, spaces.MultiBinary(list(schema.action_shape))
    return observation_space, spaces.Box(-np.inf, np.inf, tuple(schema.action_shape), np.float32)


def _env_spec(env_id: str | None) -> Any:
    """The Gymnasium EnvSpec of `env_id`, or None when it is not a registered id (e.g. a factory)."""
    if not env_id:
        return None
    import gymnasium as gym

    from polyrl.envs import register_namespace

    try:
        register_namespace(env_id)
        return gym.spec(env_id)
    except Exception:  # not a registered id: the dataset keeps the name in polyrl's infos only
        return None


def _move_into_place(built: Path, target: Path) -> None:
    """Rename the built dataset onto `target`, swapping out whatever dataset was there."""
    if not target.exists():
        os.rename(built, target)
        return
    backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, backup)
    try:
        os.rename(built, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def dataset_data_path(source: str | Path) -> Path:
    """The `data` directory of a Minari dataset given as a directory or as an id in the default root."""
    path = Path(source).expanduser()
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate
    if path.exists():
        raise ExperienceError(
            f"{path} is not a Minari dataset (it has no data/metadata.json): give a dataset "
            "directory written by write_experience or Minari"
        )
    by_id = default_root() / str(source) / "data"
    if re.fullmatch(r"[-\w/]+-v\d+", str(source)) and (by_id / "metadata.json").is_file():
        return by_id
    raise ExperienceError(
        f"no experience at {source}: no such file or directory, and no Minari dataset of that id in "
        f"{default_root()} (MINARI_DATASETS_PATH); give a .npz file, a dataset directory or a dataset id"
    )


def read_minari(source: str | Path) -> TransitionBatch:
    """A Minari dataset (a directory, or an id in the default root) as one TransitionBatch.

    Rows come episode by episode; episode ids are the dataset's episode ids (or, for a dataset
    polyrl wrote, the ids of the batch written). Non-Box observations are encoded the way
    polyrl encodes them for a backend (one-hot, flattened).
    """
    minari = require_minari()
    data_path = dataset_data_path(source)
    try:
        dataset = minari.MinariDataset(data_path)
        metadata = dataset.storage.metadata
        episodes = list(dataset.iterate_episodes())
    except ImportError as exc:  # the dataset's storage backend (h5py, pyarrow) is not installed
        raise ExtraNotInstalledError(
            f"reading the Minari dataset {source} needs {exc.name or exc}: {INSTALL}"
        ) from exc
    except (ValueError, KeyError, AssertionError, OSError, TypeError) as exc:
        raise ExperienceError(
            f"cannot read the Minari dataset at {data_path}: {type(exc).__name__}: {exc}"
        ) from exc
    from polyrl.experience.minari_rows import episode_rows, schema_of

    ours = metadata.get(POLYRL_KEY) if isinstance(metadata.get(POLYRL_KEY), dict) else None
    schema = schema_of(dataset.observation_space, dataset.action_space)
    infos = {str(k): str(v) for k, v in (ours or {}).get("infos", {}).items()}
    env_spec = dataset.spec.env_spec
    if env_spec is not None:
        infos.setdefault("env_id", env_spec.id)
    batches = [episode_rows(dataset.observation_space, episode, ours) for episode in episodes if len(episode)]
    if not batches:
        return TransitionBatch.empty(schema).model_copy(update={"infos": infos})
    batch = TransitionBatch.concatenate(batches).model_copy(update={"infos": infos})
    return batch.conformed(schema)
