"""An agent in a checkpoint directory: what `Agent.save` writes, and the parts `Agent.load` and
`Agent.restore` rebuild from it (refusing to import code the checkpoint names unless trusted).

The directory itself (written aside and swapped in atomically, verified on read) is
polyrl.checkpoint's job; this module fills it with an agent and reads an agent back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrl.checkpoint import read_manifest, write_checkpoint
from polyrl.errors import CheckpointBackendMismatchError, UntrustedCheckpointError
from polyrl.manifest import NATIVE_DIR, CheckpointManifest, FileEntry
from polyrl.plugins import library_version
from polyrl.run import AgentParts, build_parts
from polyrl.spec import AgentSpec, EnvFactorySpec
from polyrl.versions import environment_versions, polyrl_version

if TYPE_CHECKING:
    from polyrl.backend import BackendDriver
    from polyrl.envs import EnvSource


def save_parts(parts: AgentParts, path: Path, metadata: dict[str, Any] | None) -> CheckpointManifest:
    """Write the agent made of `parts` as a checkpoint directory at `path`; return its manifest."""

    def manifest(files: dict[str, FileEntry]) -> CheckpointManifest:
        return CheckpointManifest(
            polyrl_version=polyrl_version(),
            backend=parts.info.name,
            library=parts.info.library,
            library_version=library_version(parts.info),
            versions=environment_versions(parts.info.library),
            created_at=datetime.now(UTC),
            spec=parts.spec,
            env_steps=parts.driver.env_steps,
            iterations=parts.iterations,
            episodes=parts.episodes,
            learning_rate=parts.driver.get_learning_rate(),
            preset=parts.preset,
            files=files,
            metadata=dict(metadata or {}),
        )

    return write_checkpoint(path, _native_writer(parts), manifest)


def _native_writer(parts: AgentParts) -> Callable[[Path], None]:
    """What a save writes into the native directory: the driver's files, and the normalisation statistics."""

    def write(native: Path) -> None:
        parts.driver.save(native)
        if parts.env.normalizer is not None:
            parts.env.normalizer.save(native)

    return write


def _refuse_named_code(path: Path, spec: AgentSpec) -> None:
    """Raise UntrustedCheckpointError if building the saved env would import code the file names."""
    if isinstance(spec.env, EnvFactorySpec):
        what = f"the env factory {spec.env.factory!r}"
        if spec.env.kwargs or spec.env_kwargs:
            what += f" with arguments {spec.env.kwargs or spec.env_kwargs}"
    elif ":" in spec.env:
        module = spec.env.split(":")[0]
        what = f"the env {spec.env!r}, whose {module!r} prefix makes Gymnasium import that module"
    else:
        return
    raise UntrustedCheckpointError(
        f"checkpoint {path} names {what}; loading it would import and call code chosen by whoever "
        "wrote the checkpoint. If you trust its source, load it with "
        "Agent.load(path, trust_env_factory=True) (CLI: --trust-env-factory); or supply the env "
        "yourself in Python with Agent.load(path, env=make_env). "
        "See docs/security.md"
    )


def load_parts(
    path: Path,
    env: str | Callable[..., Any] | EnvFactorySpec | None,
    backend: str | None,
    trust_env_factory: bool,
    device: str | None = None,
) -> AgentParts:
    """The parts of the agent saved at `path`, built the way a new agent is, then restored."""
    manifest = read_manifest(path)
    if backend is not None and backend.lower() != manifest.backend:
        raise CheckpointBackendMismatchError(
            f"checkpoint {path} was written by backend {manifest.backend!r}, not {backend!r}; "
            f"load it with backend={manifest.backend!r} (or none), or retrain on {backend!r}"
        )
    spec = manifest.spec
    if env is None and not trust_env_factory:
        _refuse_named_code(path, spec)
    if env is not None:
        spec = AgentSpec.model_validate({**spec.model_dump(exclude={"env"}), "env": env})
    if device is not None:
        # Validated by the field's own rule; model_copy keeps a callable env as it is.
        spec = spec.model_copy(update={"device": AgentSpec(device=device).device})

    def load(driver_class: type[BackendDriver], spec: AgentSpec, env: EnvSource) -> BackendDriver:
        return driver_class.load(path / NATIVE_DIR, spec, env)

    parts = build_parts(spec, load, presets=False)
    if manifest.preset is not None:
        parts.preset = manifest.preset  # what the preset filled, as recorded when it was built
    if parts.env.normalizer is not None:
        parts.env.normalizer.load(path / NATIVE_DIR)
    parts.iterations, parts.episodes = manifest.iterations, manifest.episodes
    if abs(parts.driver.get_learning_rate() - manifest.learning_rate) > 1e-12:
        parts.driver.set_learning_rate(manifest.learning_rate)
    return parts
