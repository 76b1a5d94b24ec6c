"""The pydantic protocol: validation, strictness and JSON round-trip."""

from __future__ import annotations

import polyrl
import pytest
from polyrl import AgentSpec, PlayConfig, TrainConfig
from polyrl.manifest import CheckpointManifest, FileEntry
from pydantic import ValidationError


def make_env_for_tests():
    import gymnasium as gym

    return gym.make("CartPole-v1")


def test_unknown_field_is_an_error_naming_it():
    with pytest.raises(ValidationError, match="gama"):
        AgentSpec(gama=0.9)


def test_out_of_range_values_are_rejected():
    with pytest.raises(ValidationError, match="gamma"):
        AgentSpec(gamma=1.5)
    with pytest.raises(ValidationError, match="learning_rate"):
        AgentSpec(learning_rate=-1)
    with pytest.raises(ValidationError, match="hidden"):
        AgentSpec(network={"hidden": []})


def test_a_section_of_another_algorithm_is_rejected():
    with pytest.raises(ValidationError, match="'dqn'.*algorithm is 'ppo'"):
        AgentSpec(algorithm="ppo", dqn={"buffer_size": 10})


def test_names_are_normalised_to_lowercase():
    spec = AgentSpec(backend="SB3", algorithm="PPO")
    assert (spec.backend, spec.algorithm) == ("sb3", "ppo")


def test_callable_env_becomes_an_importable_factory_reference():
    spec = AgentSpec(env=make_env_for_tests)
    assert spec.env.factory == "test_models:make_env_for_tests"
    assert spec.env.resolve() is make_env_for_tests
    again = AgentSpec.model_validate_json(spec.model_dump_json())
    assert again.env.factory == "test_models:make_env_for_tests"
    assert again.env.resolve() is make_env_for_tests  # re-imported by path


def test_unimportable_factory_says_how_to_fix():
    spec = AgentSpec(env={"factory": "no_such_module_xyz:make"})
    with pytest.raises(polyrl.errors.EnvironmentCreationError, match="pass the callable again"):
        spec.env.resolve()


@pytest.mark.parametrize(
    "model",
    [
        AgentSpec(
            backend="sb3",
            algorithm="dqn",
            env="CartPole-v1",
            seed=3,
            n_envs=2,
            network={"hidden": [32, 16], "activation": "relu"},
            learning_rate=1e-3,
            gamma=0.9,
            dqn={"buffer_size": 1000, "exploration_fraction": 0.2},
            backend_options={"tau": 0.5},
        ),
        TrainConfig(total_steps=100, eval_every=2, eval_episodes=3),
        PlayConfig(episodes=4, max_steps=10, deterministic=False, seed=1),
    ],
)
def test_json_round_trip_is_lossless(model):
    assert type(model).model_validate_json(model.model_dump_json()) == model


def test_manifest_round_trips():
    from datetime import UTC, datetime

    manifest = CheckpointManifest(
        polyrl_version="0.1.0",
        backend="sb3",
        library="stable-baselines3",
        library_version="2.9.2",
        versions={"python": "3.11"},
        created_at=datetime.now(UTC),
        spec=AgentSpec(),
        env_steps=10,
        iterations=1,
        episodes=0,
        learning_rate=0.1,
        files={"model.zip": FileEntry(size=1, sha256="0" * 64)},
    )
    assert CheckpointManifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_train_config_needs_a_limit_and_validates_assignment():
    with pytest.raises(ValidationError, match="total_steps, iterations or time_limit"):
        TrainConfig()
    config = TrainConfig(total_steps=10)
    with pytest.raises(ValidationError):
        config.total_steps = -5
    config.total_steps = 20
    assert config.total_steps == 20


def test_iteration_record_flat_names_cover_the_common_vocabulary():
    record = polyrl.IterationRecord(
        iteration=1,
        env_steps=10,
        iteration_env_steps=10,
        episodes=1,
        iteration_episodes=1,
        return_mean=1.0,
        return_min=1.0,
        return_max=1.0,
        episode_length_mean=10.0,
        learning_rate=0.1,
        losses={"loss": 0.5},
        metrics={"eval_return_mean": 2.0},
        iteration_seconds=1.0,
        wall_seconds=1.0,
        steps_per_second=10.0,
    )
    flat = record.flat()
    assert set(polyrl.COMMON_METRICS) <= set(flat)
    assert flat["loss"] == 0.5 and record.metric("eval_return_mean") == 2.0
    with pytest.raises(KeyError, match="return_mean"):
        record.metric("retrun_mean")
