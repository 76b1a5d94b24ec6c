"""Parametrization and shared fixtures of the checks (loaded only when the checks are collected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from polyrl.backend import BackendInfo

from polyrl_conformance.cases import AlgorithmCase, Case
from polyrl_conformance.scenario import AlgorithmScenario, EnvScenario
from polyrl_conformance.session import ConformanceSession

SESSION_PLUGIN = "polyrl-conformance-session"


def pytest_configure(config: pytest.Config) -> None:
    """Register the run's ConformanceSession (case selection, labels, report)."""
    if config.pluginmanager.get_plugin(SESSION_PLUGIN) is None:
        config.pluginmanager.register(ConformanceSession(config), SESSION_PLUGIN)


def _session(config: pytest.Config) -> ConformanceSession:
    # Registered in pytest_configure.
    return cast(ConformanceSession, config.pluginmanager.get_plugin(SESSION_PLUGIN))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize each check over its cases: env_case, mismatch_case or algo_case."""
    _session(metafunc.config).parametrize(metafunc)


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> ConformanceSession:
    """The run's selection: backends, cases and what they declare."""
    return _session(request.config)


def info_of(conformance: ConformanceSession, case: Case) -> BackendInfo:
    """The BackendInfo of a case's backend."""
    return conformance.infos[case.backend]


@pytest.fixture(scope="module")
def env_scenario(conformance: ConformanceSession, env_case: Case) -> Iterator[EnvScenario]:
    """The untrained agent and fixed observations of one backend x algorithm x env."""
    scenario = EnvScenario(info_of(conformance, env_case), env_case)
    yield scenario
    scenario.close()


@pytest.fixture(scope="session")
def scenario(
    conformance: ConformanceSession, algo_case: AlgorithmCase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AlgorithmScenario]:
    """The shared runs of one backend x algorithm (trained agent, twin, checkpoint, ...)."""
    workdir: Path = tmp_path_factory.mktemp(algo_case.id)
    shared = AlgorithmScenario(info_of(conformance, algo_case), algo_case, workdir)
    yield shared
    shared.close()
