"""Construction on an environment the algorithm does not declare."""

from __future__ import annotations

import polyrl
import pytest

from polyrl_conformance.cases import Case, make_spec
from polyrl_conformance.scenario import spy_on_driver
from polyrl_conformance.session import ConformanceSession


def test_space_mismatch(
    conformance: ConformanceSession, mismatch_case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agent(spec) on an env whose observation or action space the algorithm does not declare raises
    polyrl.errors.UnsupportedSpaceError (a ConfigurationError) naming the algorithm, before the
    backend's driver is asked to create anything."""
    info = conformance.infos[mismatch_case.backend]
    spec = make_spec(info, mismatch_case)
    create = spy_on_driver(monkeypatch, info.name, "create")
    with pytest.raises(polyrl.errors.UnsupportedSpaceError) as raised:
        polyrl.Agent(spec)
    assert isinstance(raised.value, polyrl.errors.ConfigurationError)
    assert mismatch_case.algorithm in str(raised.value)
    assert create.calls == [], "the driver's create() ran before the space mismatch was reported"
