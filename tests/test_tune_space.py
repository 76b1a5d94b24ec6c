"""Search spaces: every bad input is refused before a trial starts, with the field path named.

No study runs here: `check_space` and `plan_tuning` are what `polyrl.tune` calls first.
"""

from __future__ import annotations

import polyrl
import pytest
from polyrl.errors import SearchSpaceError, StudyError
from polyrl.spec import AgentSpec
from polyrl.tuning import READY_SPACES, SearchSpace, TuneSettings, check_space, ready_space
from polyrl.tuning.api import plan_tuning
from polyrl.tuning.space import fixed_fields, read_space, space_problems
from pydantic import ValidationError

PPO = AgentSpec(backend="sb3", algorithm="ppo", env="CartPole-v1")


def problems(space: dict, spec: AgentSpec = PPO) -> str:
    with pytest.raises(SearchSpaceError) as caught:
        check_space(SearchSpace.model_validate(space), spec)
    return str(caught.value)


def test_an_unknown_field_is_named_with_the_closest_one():
    message = problems({"learning_rat": {"float": [1e-4, 1e-2]}})
    assert "learning_rat: not an AgentSpec field; did you mean 'learning_rate'?" in message


def test_an_unknown_field_of_a_section_is_named_with_its_section():
    message = problems({"ppo.n_epoch": {"int": [3, 20]}})
    assert "ppo.n_epoch: ppo has no field 'n_epoch'; did you mean 'ppo.n_epochs'?" in message


def test_a_section_of_another_algorithm_is_refused():
    message = problems({"dqn.buffer_size": {"int": [1000, 100000]}})
    assert "dqn.buffer_size: the 'dqn' section applies to algorithm 'dqn'" in message
    assert "this study's algorithm is 'ppo'" in message


def test_a_float_distribution_on_an_int_field_is_refused():
    message = problems({"ppo.n_epochs": {"float": [3, 20]}})
    assert 'ppo.n_epochs: a float distribution on an int field; use {"int": [lo, hi]}' in message


def test_a_range_distribution_on_a_list_or_text_field_is_refused():
    message = problems({"network.hidden": {"int": [32, 256]}, "network.activation": {"float": [0, 1]}})
    assert "network.hidden: an int distribution on a list field" in message
    assert "network.activation: a float distribution on a str field" in message


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        ({"float": [0.1, 0.01]}, "the range [0.1, 0.01] is inverted"),
        (
            {"float": [0.01, 0.01]},
            "the range [0.01, 0.01] holds one value; fix the field with --learning_rate 0.01 instead",
        ),
        ({"float": [0.0, 0.01], "log": True}, "a log range must start above 0"),
        ({"categorical": []}, "the categorical list is empty"),
        ({"categorical": [0.1, 0.1]}, "the categorical list repeats 0.1"),
    ],
)
def test_empty_inverted_and_log_ranges_are_refused(distribution, expected):
    assert f"learning_rate: {expected}" in problems({"learning_rate": distribution})


def test_int_ranges_check_their_step():
    assert "hi - lo (17) is not a multiple of step 2" in problems(
        {"ppo.n_epochs": {"int": [3, 20], "step": 2}}
    )
    assert "a log int range takes no step" in problems(
        {"ppo.n_epochs": {"int": [1, 16], "step": 3, "log": True}}
    )


def test_a_categorical_value_the_spec_rejects_is_named():
    message = problems({"gamma": {"categorical": [0.99, 1.5]}})
    assert (
        "gamma: the choice 1.5 is rejected by AgentSpec (gamma: Input should be less than or equal to 1)"
        in message
    )
    assert "0.99" not in message.split("choice", 1)[1].split("rejected")[0]


def test_a_range_end_the_spec_rejects_is_named():
    assert "gamma: the range end 1.2 is rejected by AgentSpec" in problems({"gamma": {"float": [0.9, 1.2]}})
    message = problems({"network.hidden": {"categorical": [[64, 64], [0]]}})
    assert "network.hidden: the choice [0] is rejected by AgentSpec (network.hidden.0:" in message


def test_every_problem_is_reported_at_once():
    message = problems(
        {
            "learning_rat": {"float": [1e-4, 1e-2]},
            "gamma": {"float": [0.99, 0.9]},
            "ppo.n_epochs": {"int": [1, 5]},
        }
    )
    assert "learning_rat:" in message and "gamma:" in message and "ppo.n_epochs" not in message


@pytest.mark.parametrize("field", ["backend", "algorithm", "env", "seed"])
def test_the_fields_a_study_fixes_cannot_be_searched(field):
    assert f"{field}: cannot be searched" in problems({field: {"categorical": ["a", "b"]}})


def test_sections_and_free_keys_need_one_field():
    assert "network: is a section; search one of its fields, e.g. network.conv" in problems(
        {"network": {"categorical": [None, {"hidden": [64]}]}}
    )
    assert "backend_options: name one key of backend_options" in problems(
        {"backend_options": {"categorical": [{}, {"a": 1}]}}
    )
    assert "learning_rate.x: learning_rate is not a section" in problems(
        {"learning_rate.x": {"float": [0, 1]}}
    )


def test_nested_fields_and_backend_options_are_accepted():
    space = SearchSpace.model_validate(
        {
            "ppo.n_epochs": {"int": [3, 20]},
            "ppo.clip_range": {"float": [0.1, 0.4]},
            "network.hidden": {"categorical": [[64, 64], [256, 256]]},
            "normalize.clip": {"float": [5.0, 10.0]},
            "backend_options.target_kl": {"categorical": [None, 0.01, 0.05]},
            "learning_rate": {"int": [1, 2]},  # an int range gives valid floats
        }
    )
    check_space(space, PPO)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"learning_rate": {"uniform": [0, 1]}}, 'a distribution is {"float": [lo, hi]}'),
        ({"learning_rate": {"float": [0, 1], "int": [0, 1]}}, "exactly one of the three keys"),
        ({"learning_rate": {"float": [0, 1], "lgo": True}}, "not a field of FloatDistribution"),
        ({"ppo.n_epochs": {"int": [3.5, 20]}}, "Input should be a valid integer"),
        ({"learning_rate": {"float": [True, 1]}}, "a range holds numbers"),
        ({"ppo.n_epochs": {"int": [1, 5], "step": 0}}, "greater than 0"),
        ({}, "the search space is empty"),
    ],
)
def test_malformed_documents_fail_validation(document, expected):
    with pytest.raises(ValidationError, match=expected.replace("[", r"\[")):
        SearchSpace.model_validate(document)


def test_a_space_reads_back_from_its_document():
    document = {
        "learning_rate": {"float": [1e-5, 0.01], "log": True},
        "ppo.n_epochs": {"int": [2, 20], "step": 2},
        "network.hidden": {"categorical": [[64], [64, 64]]},
    }
    space = SearchSpace.model_validate(document)
    assert space.document() == document
    assert SearchSpace.model_validate(space.document()) == space


@pytest.mark.parametrize("algorithm", sorted(READY_SPACES))
def test_every_ready_space_fits_its_algorithm(algorithm):
    backend = "tianshou" if algorithm == "ddpg" else "sb3"  # sb3 has no DDPG in polyrl
    check_space(ready_space(algorithm), AgentSpec(backend=backend, algorithm=algorithm, env="Pendulum-v1"))


def test_an_algorithm_without_a_ready_space_says_to_give_one():
    with pytest.raises(SearchSpaceError, match=r"no ready search space for algorithm 'impala'.*--space"):
        ready_space("impala")


def test_tune_refuses_a_bad_space_before_writing_anything(tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "study"
    ppo = {"algorithm": "ppo", "env": "CartPole-v1"}
    with pytest.raises(SearchSpaceError, match="ppo.n_epochs: a float distribution on an int field"):
        polyrl.tune("bad", ppo, {"ppo.n_epochs": {"float": [1, 4]}}, out=out)
    with pytest.raises(polyrl.errors.UnknownAlgorithmError, match="has no algorithm 'ppoo'"):
        polyrl.tune("bad", {**ppo, "algorithm": "ppoo"}, {"learning_rate": {"float": [1e-4, 1e-3]}}, out=out)
    with pytest.raises(ValidationError, match="eval_every"):
        polyrl.tune("bad", ppo, out=out, steps=100, eval_every=1000)
    with pytest.raises(StudyError, match="--study-seed 5"):
        polyrl.tune("bad", {**ppo, "seed": 5}, out=out)
    with pytest.raises(StudyError, match="a study needs an environment"):
        polyrl.tune("bad", {"algorithm": "ppo"}, out=out)
    assert not out.exists()


def test_without_optuna_tune_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(polyrl.errors.ExtraNotInstalledError, match=r"pip install 'polyrl\[tune\]'"):
        polyrl.tune("x", {"algorithm": "ppo"}, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- what the user fixed is not searched ------------------------------------------------------------


def plan(spec: dict, space: dict | None = None):
    return plan_tuning("t", spec, space, None, TuneSettings(), None)


def test_fixed_fields_are_the_paths_the_user_set():
    spec = AgentSpec.model_validate(
        {"backend": "sb3", "algorithm": "ppo", "env": "CartPole-v1", "gamma": 0.9, "ppo": {"n_epochs": 4},
         "network": {"hidden": [32]}, "backend_options": {"target_kl": 0.02}, "env_kwargs": {}}
    )  # fmt: skip
    assert fixed_fields(spec) == {
        "gamma": 0.9,
        "ppo.n_epochs": 4,
        "network.hidden": [32],
        "backend_options.target_kl": 0.02,
    }


def test_fields_fixed_by_the_user_are_left_out_of_the_ready_space():
    found = plan(
        {"algorithm": "ppo", "env": "CartPole-v1", "iteration_steps": 256, "network": {"hidden": [32]}}
    )
    assert "iteration_steps" not in found.space.root and "network.hidden" not in found.space.root
    assert set(found.space.root) == set(READY_SPACES["ppo"]) - {"iteration_steps", "network.hidden"}
    assert found.fixed == ["iteration_steps", "network.hidden"]
    # A whole section fixed (network: null, the backend's default network) fixes its fields too.
    assert not any(
        path.startswith("network.") for path in plan({"env": "CartPole-v1", "network": None}).space.root
    )


def test_fixing_every_field_of_the_ready_space_leaves_nothing_to_search():
    # null fixes a section at the backend's defaults: all its fields.
    spec = {"algorithm": "dqn", "env": "CartPole-v1", "learning_rate": 1e-3, "gamma": 0.9, "batch_size": 32,
            "dqn": None, "network": None}  # fmt: skip
    with pytest.raises(SearchSpaceError, match="you fixed every field of polyrl's ready dqn space"):
        plan(spec)


def test_a_space_of_ones_own_may_not_search_a_fixed_field():
    base = AgentSpec(backend="sb3", algorithm="ppo", env="CartPole-v1", iteration_steps=256, network=None)
    space = SearchSpace.model_validate(
        {
            "iteration_steps": {"categorical": [128, 512]},
            "network.hidden": {"categorical": [[64], [32]]},
            "gamma": {"float": [0.9, 0.99]},
        }
    )
    problems = space_problems(space, base, fixed_fields(base))
    assert [problem.split(":")[0] for problem in problems] == ["iteration_steps", "network.hidden"]
    assert problems[0].startswith("iteration_steps: fixed to 256 by your spec")
    assert problems[1].startswith("network.hidden: fixed to null by your spec (the flag --network")
    with pytest.raises(SearchSpaceError, match="iteration_steps: fixed to 256"):
        plan({"env": "CartPole-v1", "iteration_steps": 256}, {"iteration_steps": {"int": [64, 512]}})


# -- malformed documents, in the user's words and all at once -----------------------------------------


def test_malformed_entries_name_the_path_and_the_distribution_key():
    space, problems = read_space(
        {
            "ppo.n_epochs": {"int": [3.5, 20]},
            "learning_rate": {"float": [1e-5, 1e-2], "lg": True},
            "gamma": {"float": [0.9]},
            "batch_size": {"categorical": 64},
            "network.activation": {"uniform": ["tanh"]},
            "ppo.clip_range": {"float": [0.1, 0.3]},
        }
    )
    assert list(space.root) == ["ppo.clip_range"]  # the well-formed entry is kept for the next checks
    assert problems == [
        'ppo.n_epochs: "int": lo 3.5 should be a valid integer',
        "learning_rate: \"lg\" is not a key of a float distribution; did you mean 'log'? its keys are: "
        "float, log",
        'gamma: "float" takes [lo, hi] (two numbers); got [0.9]',
        'batch_size: "categorical" takes a list of values; got 64',
        'network.activation: a distribution is {"float": [lo, hi]}, {"int": [lo, hi]} or {"categorical": '
        '[value, ...]} (exactly one of the three keys); got {"uniform": ["tanh"]}',
    ]


def test_malformed_and_unsearchable_entries_are_reported_together():
    with pytest.raises(SearchSpaceError) as caught:
        plan(
            {"env": "CartPole-v1"},
            {
                "ppo.n_epochs": {"int": [3.5, 20]},
                "learning_rat": {"float": [1e-4, 1e-3]},
                "gamma": {"float": [0.9, 1.5]},
            },
        )
    lines = str(caught.value).splitlines()[1:]
    assert [line.strip().split(":")[0] for line in lines] == ["ppo.n_epochs", "learning_rat", "gamma"]
    with pytest.raises(SearchSpaceError, match="the search space is empty"):
        plan({"env": "CartPole-v1"}, {})
