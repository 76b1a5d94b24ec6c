"""The `polyrl` command line: flag parsing, validation, train/play/evaluate/show/plugins, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import polyrl
import pytest
from polyrl.cli.app import app, build_documents
from polyrl.cli.overrides import parse_flags, parse_value, route
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0.98", 0.98),
        ("3e-4", 3e-4),
        ("12", 12),
        ("true", True),
        ("null", None),
        ("CartPole-v1", "CartPole-v1"),
        ("64,64", [64, 64]),
        ("[32, 16]", [32, 16]),
        ('{"target_kl": 0.02}', {"target_kl": 0.02}),
        ("relu,tanh", ["relu", "tanh"]),
        ("__import__('os').system('false')", "__import__('os').system('false')"),
    ],
)
def test_values_are_json_literals_comma_lists_or_plain_strings(raw, value):
    assert parse_value(raw) == value


def test_flags_support_dots_colons_equals_dashes_repeats_and_switches():
    flags = parse_flags(
        [
            "--ppo.n_epochs",
            "4",
            "--ppo:clip-range=0.1",
            "--network.hidden",
            "64",
            "--network.hidden",
            "32",
            "--learning-rate",
            "1e-3",
            "--backend_options.normalize_advantage",
        ]
    )
    assert flags == {
        ("ppo", "n_epochs"): 4,
        ("ppo", "clip_range"): 0.1,
        ("network", "hidden"): [64, 32],
        ("learning_rate",): 1e-3,
        ("backend_options", "normalize_advantage"): True,
    }


def test_a_stray_positional_argument_is_an_error():
    with pytest.raises(polyrl.ConfigurationError, match="unexpected argument 'oops'"):
        parse_flags(["oops"])


def test_unknown_field_names_the_closest_field_and_all_settable_ones():
    with pytest.raises(polyrl.ConfigurationError, match=r"--gama; did you mean --gamma\?.*total_steps"):
        route(parse_flags(["--gama", "0.9"]), {"spec": polyrl.AgentSpec, "config": polyrl.TrainConfig})


def test_files_then_named_flags_then_extra_flags_take_precedence(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"algorithm": "a2c", "gamma": 0.9, "seed": 1, "a2c": {"ent_coef": 0.1}}))
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps({"total_steps": 100, "eval_every": 3}))
    spec, config = build_documents(
        spec_file,
        config_file,
        {"seed": 7, "total_steps": None},
        ["--gamma", "0.95", "--a2c.vf_coef", "0.25", "--eval_every", "2"],
    )
    assert (spec.algorithm, spec.gamma, spec.seed) == ("a2c", 0.95, 7)
    assert (spec.a2c.ent_coef, spec.a2c.vf_coef) == (0.1, 0.25)
    assert (config.total_steps, config.eval_every) == (100, 2)


def test_train_saves_evaluates_and_writes_the_run_documents(fake_backend, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--backend",
        "fake",
        "--algo",
        "linear",
        "--env",
        "CartPole-v1",
        "--steps",
        "300",
        "--seed",
        "3",
        "--out",
        str(out),
        "--eval-episodes",
        "2",
        "--iteration_steps",
        "100",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "polyrl.json").read_text())
    assert manifest["backend"] == "fake" and manifest["env_steps"] == 300 and manifest["iterations"] == 3
    assert manifest["spec"]["seed"] == 3 and manifest["spec"]["iteration_steps"] == 100
    assert manifest["metadata"]["stop_reason"] == "total_steps reached"
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert len(evaluation["episodes"]) == 2 and evaluation["deterministic"] is True
    assert manifest["metadata"]["eval_return_mean"] == evaluation["return_mean"]
    records = json.loads((out / "train_result.json").read_text())["records"]
    assert [r["env_steps"] for r in records] == [100, 200, 300]
    assert json.loads((out / "train_config.json").read_text())["total_steps"] == 300

    shown = invoke("show", str(out), "--json")
    assert json.loads(shown.output)["env_steps"] == 300
    played = invoke("play", str(out), "--episodes", "3", "--max-steps", "5")
    assert played.exit_code == 0 and played.output.count("truncated") == 3
    evaluated = invoke("evaluate", str(out), "--episodes", "2")
    assert evaluated.exit_code == 0 and "deterministic actions" in evaluated.output


def test_require_return_fails_the_command_when_the_agent_is_too_weak(fake_backend, tmp_path):
    result = invoke(
        "train",
        "--backend",
        "fake",
        "--algo",
        "linear",
        "--steps",
        "100",
        "--out",
        str(tmp_path / "r"),
        "--eval-episodes",
        "1",
        "--require-return",
        "1e9",
    )
    assert result.exit_code == 1
    assert "below threshold" in result.output and (tmp_path / "r" / "polyrl.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nope", "--steps", "10"], "unknown backend 'nope'; installed:"),
        (["--backend", "fake", "--algo", "zzz", "--steps", "10"], "has no algorithm 'zzz'"),
        (["--backend", "fake", "--gamma", "2", "--steps", "10"], "less than or equal to 1"),
        (["--backend", "fake"], "give at least one of total_steps"),
        (
            ["--backend", "fake", "--steps", "10", "--ppo.n_epochs", "2", "--algo", "a2c"],
            "section(s) ['ppo']",
        ),
    ],
)
def test_bad_settings_exit_with_status_2_and_a_message(fake_backend, tmp_path, args, message):
    result = invoke("train", *args, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


def test_loading_a_missing_checkpoint_names_the_path(tmp_path):
    result = invoke("play", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "no checkpoint at" in result.output


def test_plugins_lists_backends_with_algorithms_install_state_and_versions():
    rows = {row["name"]: row for row in json.loads(invoke("plugins", "--json").output)}
    assert {"sb3", "rllib", "tianshou"} <= set(rows)
    sb3 = rows["sb3"]
    assert sb3["installed"] is True and sb3["version"] and sb3["install"] == "'polyrl[sb3]'"
    assert sb3["algorithms"]["dqn"] == ["discrete"] and sb3["plugin"] == "sb3"


def test_plugins_and_help_import_no_backend_library():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from polyrl.cli.app import app\n"
        "assert CliRunner().invoke(app, ['plugins']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['train', '--help']).exit_code == 0\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'tianshou', 'stable_baselines3') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_flag():
    assert invoke("--version").output.strip() == f"polyrl {polyrl.__version__}"


def test_sb3_train_from_the_command_line_then_play(tmp_path):
    pytest.importorskip("stable_baselines3")
    out = tmp_path / "sb3"
    result = invoke(
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--steps",
        "256",
        "--seed",
        "0",
        "--out",
        str(out),
        "--eval-episodes",
        "1",
        "--iteration_steps",
        "128",
        "--batch_size",
        "64",
        "--ppo.n_epochs",
        "1",
        "--network.hidden",
        "16,16",
    )
    assert result.exit_code == 0, result.output
    agent = polyrl.Agent.load(out)
    assert agent.env_steps == 256 and agent.effective_hyperparameters().hidden == [16, 16]
