"""The suite tests itself: realistic bugs planted in copies of the PyTorch example plugin.

`conformance/examples/polyrl_torch_dqn` (backend `tdqn`) passes every check. Each bug below is a
textual patch of it — exact-string replacements that must each match exactly once, so a refactor
of the example cannot silently disarm a bug — applied to a copy under its own package and backend
name. The copy is registered as an installed distribution without pip (a `dist-info` directory
with `entry_points.txt` next to the package, on PYTHONPATH), the suite runs on it in a subprocess
as a plugin's CI would, and the report must show the check guarding the broken rule as failed,
while the listed control checks (same shared runs, rules the bug does not break) still pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from polyrl_conformance.report import CHECK_NAMES

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "conformance" / "examples" / "polyrl_torch_dqn" / "polyrl_torch_dqn"
PACKAGE, BACKEND = "polyrl_torch_dqn", "tdqn"

Patch = tuple[str, str, str]  # (file in the package, exact old text, new text)


@dataclass(frozen=True)
class Bug:
    """One planted bug: the check that must fail on it, controls that must pass, the patch."""

    name: str
    check: str
    controls: tuple[str, ...]
    patches: tuple[Patch, ...]

    @property
    def package(self) -> str:
        return f"polyrl_tdqn_bug_{self.name}"

    @property
    def backend(self) -> str:
        # No underscores: a backend name must never contain a check name `-k` could match.
        return "tdqnbug" + self.name.replace("_", "")


BUGS = (
    Bug(
        "lr_config_only",
        "lr_reaches_optimizer",
        ("callback_order",),
        (
            # The rate goes into a config dict the already-built Adam never reads again.
            (
                "driver.py",
                "        return optimizer_learning_rate([self.optimizer])\n",
                '        return self.config["learning_rate"]\n',
            ),
            (
                "driver.py",
                "        set_optimizer_learning_rate([self.optimizer], value)\n",
                '        self.config["learning_rate"] = value\n',
            ),
        ),
    ),
    Bug(
        "no_optimizer_state",
        "resume_exact",
        ("resume", "save_load_actions"),
        (
            # Weights saved, Adam's moments not: load builds a fresh optimizer.
            ("driver.py", '            "optimizer": self.optimizer.state_dict(),\n', ""),
            ("driver.py", 'driver.optimizer.load_state_dict(networks["optimizer"])', "pass"),
        ),
    ),
    Bug(
        "native_counter_restarts",
        "resume_exact",
        ("resume", "save_load_actions"),
        (
            # polyrl's env_steps come back, the counter driving epsilon restarts at 0.
            ("driver.py", '        driver.native_steps = int(state["native_steps"])\n', ""),
        ),
    ),
    Bug(
        "runs_to_horizon",
        "iteration_budget",
        ("callback_order",),
        (
            # One "iteration" runs to the planned end of the train() call (like learn(total)).
            (
                "driver.py",
                "        episodes: list[tuple[float, int]] = []\n",
                "        started = self.total_steps\n        episodes: list[tuple[float, int]] = []\n",
            ),
            (
                "driver.py",
                "        for _ in range(self.iteration_steps // self.n_envs):\n",
                "        while self.total_steps < self.horizon:\n",
            ),
            (
                "driver.py",
                "            env_steps=self.iteration_steps,\n",
                "            env_steps=self.total_steps - started,\n",
            ),
            (
                "driver.py",
                "    def _update(self) -> float:\n",
                "    def set_horizon(self, end_env_steps):\n"
                "        self.horizon = end_env_steps or self.total_steps + self.iteration_steps\n\n"
                "    def _update(self) -> float:\n",
            ),
        ),
    ),
    Bug(
        "replay_not_restored",
        "replay_buffer",
        ("resume", "save_load_actions"),
        (("driver.py", "        driver.buffer.load(directory / REPLAY_FILE)\n", ""),),
    ),
    Bug(
        "global_rng",
        "seeding_interleaved",
        ("callback_order",),
        (
            # Exploration and minibatches drawn from the process-global generators.
            (
                "driver.py",
                "        explore = self.rng.random(len(greedy)) < self.epsilon()\n",
                "        explore = np.random.random(len(greedy)) < self.epsilon()\n",
            ),
            (
                "driver.py",
                "self.rng.integers(head.out_features, size=len(greedy))",
                "np.random.randint(head.out_features, size=len(greedy))",
            ),
            (
                "driver.py",
                "torch.randint(len(self), (size,), generator=generator)",
                "torch.randint(len(self), (size,))",
            ),
        ),
    ),
    Bug(
        "image_flattened",
        "image_observations",
        ("discrete_observations", "device"),
        (
            # Images flattened into the MLP like any vector: no conv layer, the encoder reads "mlp".
            (
                "network.py",
                "        cnn: Any = conv_encoder(resolved.encoder, activation)"
                "  # scale, channels first, convs, flatten\n"
                "        encoder, features = cnn, int(cnn.output_dim)\n",
                "        # pixels straight into the first Linear layer\n"
                "        encoder, features = torch.nn.Flatten(), int(np.prod(observation_space.shape))\n",
            ),
        ),
    ),
    Bug(
        "device_ignored",
        "device",
        ("image_observations", "normalize"),
        (
            # Always the CPU, whatever the spec asks: "cuda:7" builds an agent instead of failing.
            (
                "driver.py",
                "        self.device = torch.device(resolve_device(spec.device))\n",
                '        self.device = torch.device("cpu")  # the spec\'s device is never read\n',
            ),
        ),
    ),
    Bug(
        "raw_env",
        "discrete_observations",
        ("image_observations", "device"),
        (
            # The envs built from the spec's id or factory directly, not EnvSource.make(): their
            # observations are never encoded (a Discrete cell arrives as an int, not one-hot).
            (
                "driver.py",
                "[env.make for _ in range(self.n_envs)]",
                "[lambda: gym.make(env.env) if isinstance(env.env, str)"
                " else env.env.resolve()(**env.env.kwargs) for _ in range(self.n_envs)]",
            ),
        ),
    ),
    Bug(
        "collect_shifted",
        "experience_collect",
        ("experience_add",),
        (
            # Each collected row gets the observation after its step: rows shifted by one step.
            (
                "driver.py",
                "                observations=self.observations.copy(),\n",
                "                observations=next_observations.copy(),\n",
            ),
        ),
    ),
    Bug(
        "experience_counted",
        "experience_add",
        ("experience_collect",),
        (
            # External transitions counted as env steps the agent collected.
            (
                "driver.py",
                "        self.buffer.add(\n            batch.observations,",
                "        self.total_steps += len(batch)\n"
                "        self.buffer.add(\n            batch.observations,",
            ),
        ),
    ),
    Bug(
        "no_losses",
        "losses_reported",
        ("metrics",),
        (
            (
                "driver.py",
                '            losses={"loss": loss, "q_loss": loss} if loss is not None else {},\n',
                "",
            ),
        ),
    ),
)


def apply_patches(text: str, patches: list[tuple[str, str]], where: str) -> str:
    """Apply exact-string replacements, each of which must match exactly once."""
    for old, new in patches:
        count = text.count(old)
        assert count == 1, f"{where}: the planted patch must match exactly once, matched {count}x: {old!r}"
        text = text.replace(old, new)
    return text


def install_copy(site: Path, package: str, backend: str, patches: tuple[Patch, ...] = ()) -> None:
    """The example under a new package and backend name, patched, registered as a distribution."""
    target = site / package
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.glob("*.py"):
        text = path.read_text()
        text = apply_patches(text, [(old, new) for file, old, new in patches if file == path.name], path.name)
        text = text.replace(PACKAGE, package)
        if path.name == "__init__.py":
            text = apply_patches(text, [(f'name="{BACKEND}",', f'name="{backend}",')], path.name)
        path.write_text(text)
    unknown = {file for file, _, _ in patches} - {path.name for path in target.glob("*.py")}
    assert not unknown, f"patches name files the example does not have: {unknown}"
    dist_info = site / f"{package}-0.1.dist-info"
    dist_info.mkdir()
    distribution = package.replace("_", "-")
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[polyrl]\n{backend} = {package}\n")


def run_suite(tmp_path: Path, backend: str, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the suite on `backend` (importable from tmp_path/site); return the process and report."""
    report = tmp_path / "report"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "polyrl_conformance",
        "--polyrl-backend",
        backend,
        "--polyrl-report",
        str(report),
        "-q",
        "-p",
        "no:cacheprovider",
        "--tb=line",
        *options,
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert (report / "conformance.json").is_file(), done.stdout[-4000:] + done.stderr[-4000:]
    return done, json.loads((report / "conformance.json").read_text())


def row_cells(report: dict, backend: str) -> dict[str, str]:
    (row,) = [r for r in report["matrix"] if (r["backend"], r["algorithm"]) == (backend, "dqn")]
    return row["cells"]


def test_every_planted_bug_names_real_checks_and_still_applies(tmp_path: Path) -> None:
    """Cheap guard: each patch still matches the example exactly once, each check exists."""
    for bug in BUGS:
        assert {bug.check, *bug.controls} <= set(CHECK_NAMES), bug.name
        install_copy(tmp_path, bug.package, bug.backend, bug.patches)


def test_unmodified_example_passes_every_check(tmp_path: Path) -> None:
    install_copy(tmp_path / "site", PACKAGE, BACKEND)
    done, report = run_suite(tmp_path, BACKEND)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert report["passed"] and report["summary"]["fail"] == 0
    assert row_cells(report, BACKEND) == dict.fromkeys(CHECK_NAMES, "pass")
    (backend,) = report["backends"]
    assert backend["plugin"] == "polyrl-torch-dqn 0.1" and backend["deterministic"] is True


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    """Every bug in its own copy, all checked in one suite run (one interpreter start, one torch
    import): `-k` selects exactly each copy's check and controls, by test id."""
    root = tmp_path_factory.mktemp("planted")
    for bug in BUGS:
        install_copy(root / "site", bug.package, bug.backend, bug.patches)
    selected = " or ".join(
        f"test_{check}[{bug.backend}-dqn]" for bug in BUGS for check in (bug.check, *bug.controls)
    )
    return run_suite(root, ",".join(bug.backend for bug in BUGS), "-k", selected)


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_planted_bug_fails_its_check(bug: Bug, planted: tuple[subprocess.CompletedProcess, dict]) -> None:
    done, report = planted
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    cells = row_cells(report, bug.backend)
    reasons = {
        r["check"]: r["reason"]
        for r in report["results"]
        if r["backend"] == bug.backend and r["outcome"] != "pass"
    }
    assert cells[bug.check] == "fail", f"{bug.name} not caught by {bug.check}: {cells}"
    assert {c: cells[c] for c in bug.controls} == dict.fromkeys(bug.controls, "pass"), reasons
    ran = {check for check, cell in cells.items() if cell != "-"}
    assert ran == {bug.check, *bug.controls}, "the -k selection ran other checks"
