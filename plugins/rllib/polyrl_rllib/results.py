"""One `algo.train()` result in polyrl's vocabulary: the episodes the driver's callback logged,
and the Learner's losses and metrics under polyrl's common names."""

from __future__ import annotations

from typing import Any

from polyrl.backend import DriverReport
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS

from polyrl_rllib import learners

# RLlib learner result keys -> polyrl's common loss names
_LOSSES = {
    "total_loss": "loss",
    "policy_loss": "policy_loss",
    "pi_loss": "policy_loss",
    "vf_loss": "value_loss",
    "qf_loss": "q_loss",
}
_METRICS = {
    "entropy": "entropy",
    "mean_kl_loss": "kl",
    "curr_kl_coeff": "kl_coeff",
    "vf_explained_var": "explained_variance",
    "alpha_loss": "ent_coef_loss",
    "alpha_value": "ent_coef",
    "qf_mean": "q_mean",
    "td_error_mean": "td_error_mean",
    "num_module_steps_trained": "steps_trained",
}


def driver_report(result: dict[str, Any], algorithm: str, env_steps: int) -> DriverReport:
    """The report of an iteration of `algorithm` that sampled `env_steps` and returned `result`."""
    runners = result.get(ENV_RUNNER_RESULTS, {})
    episodes = learners.logged_episodes(runners.get(learners.EPISODES_KEY))
    learner = result.get("learners", {}).get(DEFAULT_MODULE_ID, {})
    losses = {common: float(learner[key]) for key, common in _LOSSES.items() if key in learner}
    if "entropy" in learner:
        losses["entropy_loss"] = -float(learner["entropy"])
    if algorithm == "sac":
        losses.pop("policy_loss", None)
        if "policy_loss" in learner:
            losses["actor_loss"] = float(learner["policy_loss"])
        if "qf_loss" in learner:
            losses["critic_loss"] = float(learner["qf_loss"])
            losses.pop("q_loss", None)
        if {"actor_loss", "critic_loss"} <= losses.keys():
            losses["loss"] = losses["actor_loss"] + losses["critic_loss"]
    elif "q_loss" in losses:
        losses.setdefault("loss", losses["q_loss"])
    metrics = {
        common: float(learner[key])
        for key, common in _METRICS.items()
        if isinstance(learner.get(key), int | float)
    }
    return DriverReport(env_steps=env_steps, episodes=episodes, losses=losses, metrics=metrics)
