"""A deliberately broken example backend ("broken"): the conformance suite must catch it."""

from __future__ import annotations

from polyrl.backend import hookimpl
from polyrl_numpy_cem import BACKEND as CEM

BACKEND = CEM.model_copy(
    update={
        "name": "broken",
        "description": "Example: CEM with two protocol violations (see polyrl_broken.driver)",
        "driver": "polyrl_broken.driver:BrokenDriver",
        "install_hint": "polyrl-broken",
    }
)


@hookimpl
def polyrl_backends():
    """Declare the broken backend."""
    return [BACKEND]
