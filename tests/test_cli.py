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
    with pytest.raises(polyrl.errors.ConfigurationError, match="unexpected argument 'oops'"):
        parse_flags(["oops"])


def test_unknown_field_names_the_closest_field_and_all_settable_ones():
    with pytest.raises(
        polyrl.errors.ConfigurationError, match=r"--gama; did you mean --gamma\?.*total_steps"
    ):
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
    played = invoke("play", str(out), "--episodes", "3", "--max-steps", "5", "--json")
    assert played.exit_code == 0
    assert [(e["length"], e["truncated"]) for e in json.loads(played.output)["episodes"]] == [(5, True)] * 3
    evaluated = invoke("evaluate", str(out), "--episodes", "2", "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.output)["deterministic"] is True


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
    assert "below threshold: evaluation return mean" in result.output
    assert (tmp_path / "r" / "polyrl.json").is_file()


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


# -- a newcomer's first hour (issue 13): output that survives any width, help that shows every flag --


def narrow(*args: str, width: int = 40):
    """Invoke at a narrow terminal width, as CI does (COLUMNS=40)."""
    return runner.invoke(app, list(args), env={"COLUMNS": str(width)}, catch_exceptions=False)


def test_error_text_in_brackets_is_printed_verbatim_and_unwrapped(fake_backend, tmp_path):
    result = narrow("train", "--backend", "ghost", "--steps", "10", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "install it with: pip install 'polyrl[ghost]'" in result.output
    lines = [line for line in result.output.splitlines() if "BackendNotInstalledError" in line]
    assert len(lines) == 1 and "'polyrl[ghost]'" in lines[0]  # one line, though longer than 40 columns


def test_plugins_table_shows_install_extras_in_brackets(fake_backend):
    from polyrl.cli import render
    from rich.console import Console

    rows = json.loads(narrow("plugins", "--json").output)
    wide = Console(width=300, record=True)
    wide.print(render.plugins_table(rows))
    assert "pip install 'polyrl[ghost]'" in wide.export_text()


@pytest.mark.parametrize(
    ("flags", "path", "suggestion"),
    [
        (["--ppo.n_epoch", "3"], "ppo.n_epoch", "did you mean 'n_epochs'?"),
        (["--network.hiden", "8"], "network.hiden", "did you mean 'hidden'?"),
    ],
)
def test_nested_flag_typos_name_the_closest_field(fake_backend, tmp_path, flags, path, suggestion):
    result = narrow("train", "--backend", "fake", "--steps", "10", *flags, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"{path}: not a field of" in text and suggestion in text


def test_spec_json_typos_name_the_closest_field(fake_backend, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"backend": "fake", "algo": "linear", "ppo": {"clip": 0.1}}))
    result = narrow("train", "--spec", str(spec), "--steps", "10", "--out", str(tmp_path / "x"))
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "algo: not a field of AgentSpec; did you mean 'algorithm'?" in text
    assert "ppo.clip: not a field of PPOSection; did you mean 'clip_range'?" in text


def test_python_keyword_typos_name_the_closest_field():
    with pytest.raises(ValueError, match=r"did you mean 'learning_rate'\?"):
        polyrl.AgentSpec(lerning_rate=1e-3)
    typo = r"dqn\.exploration_fraktion[\s\S]*did you mean 'exploration_fraction'"
    with pytest.raises(ValueError, match=typo):
        polyrl.AgentSpec(algorithm="dqn", dqn={"exploration_fraktion": 0.1})


def test_train_help_lists_every_spec_and_schedule_field_with_type_and_default():
    from polyrl.cli.fields import field_flags

    text = " ".join(narrow("train", "--help", width=250).output.split())
    flags = field_flags()
    assert {"--learning-rate", "--n-envs", "--ppo.n-epochs", "--network.hidden", "--eval-every"} <= {
        f.flag for f in flags
    }
    for flag in flags:
        if flag.path[0] in ("backend", "algorithm", "env", "seed", "total_steps", "iterations"):
            continue  # named options of train, listed once above
        if flag.path[0] in ("time_limit", "eval_episodes"):
            continue
        assert f"{flag.flag} {flag.type}" in text, flag.flag
    assert (
        "--learning-rate float|schedule (> 0) Optimizer learning rate: a number, or a schedule (see "
        'polyrl.schedules), e.g. "lin_3e-4". [default: backend\'s]'
    ) in text
    assert "--n-envs int (> 0, <= 1024) Parallel envs that collect experience. [default: 1]" in text


def test_both_flag_styles_are_accepted(fake_backend, tmp_path):
    out = tmp_path / "run"
    result = narrow(
        "train", "--backend", "fake", "--algo", "linear", "--total_steps", "200", "--iteration-steps", "100",
        "--eval_episodes", "1", "--out", str(out), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["result"]["env_steps"] == 200 and len(summary["evaluation"]["episodes"]) == 1


def test_nothing_is_printed_before_the_backend_is_validated(fake_backend, tmp_path):
    result = narrow("train", "--backend", "sb4", "--steps", "10", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "training" not in result.output and "unknown backend 'sb4'" in result.output


def test_play_and_evaluate_have_distinct_titles(fake_backend, tmp_path):
    out = tmp_path / "run"
    narrow("train", "--backend", "fake", "--algo", "linear", "--steps", "100", "--out", str(out), "--json")
    played = " ".join(narrow("play", str(out), "--max-steps", "3", width=200).output.split())
    evaluated = " ".join(narrow("evaluate", str(out), "--max-steps", "3", width=200).output.split())
    assert f"play of {out}: 1 episode(s), deterministic actions" in played
    assert f"evaluation of {out}: 10 deterministic episode(s)" in evaluated


def test_show_has_headings_for_the_checkpoint_and_the_spec(fake_backend, tmp_path):
    out = tmp_path / "run"
    narrow("train", "--backend", "fake", "--algo", "linear", "--steps", "100", "--out", str(out), "--json")
    shown = narrow("show", str(out), width=300).output
    assert f"checkpoint {out}" in shown
    assert "spec (the fields set differently from AgentSpec's defaults; --json shows everything):" in shown


@pytest.mark.parametrize(("suffix", "episodes"), [(".gif", 1), (".gif", 2), (".mp4", 1)])
def test_play_record_writes_the_named_movie(fake_backend, tmp_path, suffix, episodes):
    pytest.importorskip("imageio")
    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "run"
    narrow("train", "--backend", "fake", "--algo", "linear", "--steps", "100", "--out", str(out), "--json")
    (tmp_path / "play-000-episode-0.gif").write_text("the user's own file")
    target = tmp_path / f"movie{suffix}"
    result = narrow(
        "play", str(out), "--episodes", str(episodes), "--max-steps", "4", "--record", str(target), "--json"
    )
    assert result.exit_code == 0, result.output
    movies = json.loads(result.output)["movies"]
    expected = (
        [str(target)] if episodes == 1 else [str(tmp_path / f"movie-episode-{i}{suffix}") for i in range(2)]
    )
    assert movies == expected and all((tmp_path / m).stat().st_size > 0 for m in movies)
    assert (tmp_path / "play-000-episode-0.gif").read_text() == "the user's own file"
    assert not list(tmp_path.glob(".polyrl-record-*"))  # the staging folder is gone


def test_record_needs_a_movie_suffix(fake_backend, tmp_path):
    out = tmp_path / "run"
    narrow("train", "--backend", "fake", "--algo", "linear", "--steps", "100", "--out", str(out), "--json")
    result = narrow("play", str(out), "--record", str(tmp_path / "movie.avi"))
    assert result.exit_code == 2 and "name a .gif or .mp4 file" in " ".join(result.output.split())


def test_render_without_a_display_says_to_record_instead(fake_backend, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    out = tmp_path / "run"
    narrow("train", "--backend", "fake", "--algo", "linear", "--steps", "100", "--out", str(out), "--json")
    result = narrow("play", str(out), "--render")
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "RenderError" in text and "--record out.gif" in text


def test_headless_gl_errors_get_the_mujoco_gl_hint(monkeypatch):
    from polyrl.envs import headless_render_hint

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    hint = headless_render_hint("mujoco.FatalError: gladLoadGL error")
    assert "MUJOCO_GL=egl" in hint and "MUJOCO_GL=osmesa" in hint
    assert headless_render_hint("index out of range") == ""
    monkeypatch.setenv("DISPLAY", ":0")
    assert headless_render_hint("GLFW error") == ""


def test_grid_help_lists_backend_algorithm_and_every_spec_field():
    text = " ".join(narrow("grid", "--help", width=250).output.split())
    for flag in (
        "--backend str",
        "--algorithm str",
        "--env ",
        "--learning-rate float|schedule (> 0)",
        "--ppo.n-epochs int",
    ):
        assert flag in text, flag
    assert "a comma list or a repeated flag varies it" in text
